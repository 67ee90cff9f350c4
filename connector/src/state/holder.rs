//! Who holds a lock: this process, named for people (`host:pid`) and for machines.
//!
//! The machine form lets a process on the same machine tell, for certain, that
//! a lock's holder has died: it names the boot, the PID namespace, the PID and
//! the process's start time, so a reused PID or another container's PID is
//! never mistaken for the holder. From another machine nothing is certain, and
//! [`is_certainly_dead`] says `false`.

use std::sync::OnceLock;

/// This process.
pub struct Holder {
    /// `host:pid`, recorded with runs and shown in messages.
    pub label: String,
    /// `linux/<boot id>/<pid namespace>/<pid>/<start time>`, or empty where that cannot be read.
    pub process: String,
}

/// This process, read once.
pub fn me() -> &'static Holder {
    static ME: OnceLock<Holder> = OnceLock::new();
    ME.get_or_init(|| {
        let pid = std::process::id();
        let process = match (machine(), start_time(pid)) {
            (Some((boot, ns)), Some(start)) => format!("linux/{boot}/{ns}/{pid}/{start}"),
            _ => String::new(),
        };
        Holder {
            label: format!("{}:{pid}", hostname()),
            process,
        }
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The boot id and the PID namespace this process sees.
fn machine() -> Option<(String, String)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    let ns = ns.to_str()?.trim_start_matches("pid:").trim_matches(['[', ']']).to_string();
    Some((boot.trim().to_string(), ns))
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; the fields after it do not.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// True only when `process` (a [`Holder::process`]) is on this machine, in this PID namespace,
/// and no longer running.
pub fn is_certainly_dead(process: &str) -> bool {
    let Some((boot, ns)) = machine() else { return false };
    let parts: Vec<&str> = process.split('/').collect();
    let ["linux", their_boot, their_ns, pid, start] = parts.as_slice() else {
        return false;
    };
    if *their_boot != boot || *their_ns != ns {
        return false;
    }
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) != Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_odd_names() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_dead() {
        let me = me();
        assert!(me.label.ends_with(&format!(":{}", std::process::id())));
        if me.process.is_empty() {
            return; // not Linux: nothing can be certain
        }
        assert!(!is_certainly_dead(&me.process));
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        let start = start_time(pid);
        child.wait().expect("reaped");
        if let Some(start) = start {
            let parts: Vec<&str> = me.process.split('/').collect();
            let theirs = format!("linux/{}/{}/{pid}/{start}", parts[1], parts[2]);
            assert!(is_certainly_dead(&theirs), "a reaped process is dead");
        }
        let same_pid_other_start = me.process.rsplit_once('/').map(|(head, _)| format!("{head}/1")).expect("form");
        assert!(is_certainly_dead(&same_pid_other_start), "a reused PID is not the holder");
        let elsewhere = me.process.replacen("linux/", "linux/another-boot-", 1);
        assert!(!is_certainly_dead(&elsewhere), "another machine's holder is never certainly dead");
        assert!(!is_certainly_dead("garbage"));
    }
}
