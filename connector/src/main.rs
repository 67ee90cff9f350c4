//! The `ebb` binary: parse arguments, set up logging, dispatch.

use std::process::ExitCode;

fn main() -> ExitCode {
    pin_mmap_threshold();
    ebb::cli::main()
}

/// Buffers of 512 KiB and more get pages of their own, given back when freed. glibc starts so,
/// then raises the threshold to the largest block freed: a Parquet read from an object store
/// frees a few MiB of column chunks per row group, and after the first, each came from the heap
/// and stayed in the process's resident memory (a 1M-row preview from S3 peaked 20 to 45 MB
/// above the same preview from disk; pinned, about 13 MB above, and the one from disk is as
/// fast as before).
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 19);
    }
}
