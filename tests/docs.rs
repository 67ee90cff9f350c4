//! The docs as a house: the README maps every page under `docs/`, every page links back to it,
//! and every relative link in them (a file, and a heading's anchor in a Markdown file) leads
//! somewhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README and every page under `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The lines of a Markdown text outside its fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// A heading's anchor as GitHub makes it: lower-cased, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .into_iter()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

/// The targets of the page's Markdown links, `[text](target)`.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

fn relative(target: &str) -> bool {
    !(target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:"))
}

#[test]
fn every_relative_link_in_the_readme_and_the_docs_leads_somewhere() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        for target in links(&text).into_iter().filter(|t| relative(t)) {
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = match path {
                "" => page.clone(),
                path => page.parent().expect("folder").join(path),
            };
            let name = page.strip_prefix(root()).unwrap_or(&page).display().to_string();
            if !file.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if !fragment.is_empty() && file.extension().is_some_and(|e| e == "md") {
                let there = std::fs::read_to_string(&file).expect("target page");
                if !anchors(&there).contains(fragment) {
                    broken.push(format!("{name}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} links found: is the link finder broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_maps_every_page_and_every_page_links_back_and_the_readme_stays_short() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    assert!(readme.lines().count() < 250, "the README is {} lines", readme.lines().count());
    let mapped: BTreeSet<String> = links(&readme).into_iter().filter(|t| t.starts_with("docs/")).collect();
    for page in pages().into_iter().skip(1) {
        let name = page.file_name().expect("name").to_string_lossy().to_string();
        assert!(
            mapped.iter().any(|t| t.split('#').next() == Some(&format!("docs/{name}"))),
            "the README does not link to docs/{name}"
        );
        let text = std::fs::read_to_string(&page).expect("page");
        assert!(
            links(&text).iter().any(|t| t.starts_with("../README.md")),
            "docs/{name} does not link back to the README"
        );
    }
}

#[test]
fn the_anchor_of_a_heading_is_githubs() {
    assert_eq!(anchor(" What was sent (sync tracking)"), "what-was-sent-sync-tracking");
    assert_eq!(
        anchor("A snapshot is whole, or the run fails"),
        "a-snapshot-is-whole-or-the-run-fails"
    );
    assert_eq!(anchor("`ebb worker` and its page"), "ebb-worker-and-its-page");
    assert!(Path::new(&root()).join("docs").is_dir());
}
