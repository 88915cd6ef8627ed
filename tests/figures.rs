//! Every figure the project quotes is the figure in its table.
//!
//! Each measured quantity has one home: a table that a benchmark wrote from
//! a complete run (`docs/benchmarks/*.md`, the course's `ladder.md`). Prose
//! elsewhere quotes a figure by making the figure a link to its table:
//!
//! ```text
//! 223 instructions per message ([cost table](benchmarks/cost.md))    <- not checked
//! [223](benchmarks/cost.md) instructions per message                  <- checked
//! [223](benchmarks/cost.md "reactor-echo serve") instructions ...     <- checked, in that row
//! ```
//!
//! A reader clicks the figure and lands on the table it came from; this test
//! reads every such link in README.md, `docs/**` (the course's `.rs` steps
//! too), `src/**` and `benches/**`, and fails when the figure is not in the
//! table it names, naming file and line. With a title, the figure must be on
//! a line of the table that contains the title (its row). A figure that
//! links to a file that is not a generated table fails too: a figure's home
//! is never another page of prose.
//!
//! Figures compare as written, less thousands separators: `2.010` is not
//! `2.01`, `1.04x` is not `1.04` (× and x are the same). It needs no
//! benchmark run: it reads the tables as they are committed.

use std::fs;
use std::path::{Path, PathBuf};

/// The tables the benchmarks write (the only homes a figure may have).
fn is_table(path: &Path) -> bool {
    let Some(parent) = path.parent() else {
        return false;
    };
    let md = path.extension().is_some_and(|e| e == "md");
    md && (parent.ends_with("docs/benchmarks") || path.ends_with("docs/course/ladder.md"))
}

/// A figure quoted in the text: `[FIGURE](TARGET "ROW")`.
#[derive(Debug, PartialEq)]
struct Quote {
    line: usize,
    figure: String,
    target: String,
    row: Option<String>,
}

/// Whether a link's text is a figure: digits with optional thousands
/// separators, a decimal part and a unit of ratio (`x`, `×`, `%`).
fn is_figure(text: &str) -> bool {
    let body = text
        .strip_suffix('x')
        .or_else(|| text.strip_suffix('×'))
        .or_else(|| text.strip_suffix('%'))
        .unwrap_or(text);
    let body = body.strip_prefix(['-', '+']).unwrap_or(body);
    let mut parts = body.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    !whole.is_empty()
        && whole.starts_with(|c: char| c.is_ascii_digit())
        && whole.chars().all(|c| c.is_ascii_digit() || c == ',')
        && fraction.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

/// A figure as compared: no thousands separators, `×` written `x`.
fn normal(figure: &str) -> String {
    figure.replace(',', "").replace('×', "x")
}

/// Every `[figure](target)` and `[figure](target "row")` in `text`, with the
/// line it starts on. A link may wrap onto the next line (the break reads as
/// a space), and a row title may hold parentheses.
fn quotes(text: &str) -> Vec<Quote> {
    let mut found = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find('[') {
        let at = offset + open;
        rest = &rest[open + 1..];
        offset = at + 1;
        let Some(close) = rest.find("](") else { break };
        let inner = &rest[..close];
        if !is_figure(inner) {
            continue;
        }
        let after = &rest[close + 2..];
        // The link ends at `)`, or, with a title, at the `")` after it.
        let end = match (after.find(" \""), after.find(')')) {
            (Some(q), Some(p)) if q < p => after[q + 2..].find("\")").map(|e| q + 2 + e + 1),
            (_, p) => p,
        };
        let Some(end) = end else { break };
        let link = after[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let (target, row) = match link.split_once(" \"") {
            Some((target, title)) => (target.trim(), Some(title.trim_end_matches('"').to_owned())),
            None => (link.trim(), None),
        };
        found.push(Quote {
            line: text[..at].matches('\n').count() + 1,
            figure: inner.to_owned(),
            target: target.to_owned(),
            row,
        });
    }
    found
}

/// `path` with `.` and `..` taken out, as far as the path itself says.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The figures on one line of a table, as compared.
fn figures_on(line: &str) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || "|()/*`;:=~<>[]–".contains(c))
        .map(|w| w.trim_end_matches(['.', ',']))
        .filter(|w| is_figure(w))
        .map(normal)
        .collect()
}

/// What is wrong with one quote in `file`, if anything.
fn check(file: &Path, quote: &Quote) -> Option<String> {
    let at = format!("{}:{}", file.display(), quote.line);
    let path = quote.target.split('#').next().unwrap_or("");
    let table = lexical(&file.parent().unwrap_or(Path::new(".")).join(path));
    if !is_table(&table) {
        return Some(format!(
            "{at}: {} links to {}, which is not a generated table (docs/benchmarks/*.md, docs/course/ladder.md)",
            quote.figure, quote.target
        ));
    }
    let Ok(text) = fs::read_to_string(&table) else {
        return Some(format!(
            "{at}: {} links to {}, which does not exist",
            quote.figure, quote.target
        ));
    };
    let wanted = normal(&quote.figure);
    let lines: Vec<&str> = match &quote.row {
        Some(row) => text.lines().filter(|l| l.contains(row.as_str())).collect(),
        None => text.lines().collect(),
    };
    if lines.is_empty() {
        return Some(format!(
            "{at}: no line of {} contains the row \"{}\"",
            quote.target,
            quote.row.as_deref().unwrap_or("")
        ));
    }
    if lines.iter().any(|l| figures_on(l).contains(&wanted)) {
        return None;
    }
    Some(match &quote.row {
        Some(row) => format!(
            "{at}: {} is not in the row \"{row}\" of {}",
            quote.figure, quote.target
        ),
        None => format!("{at}: {} is not in {}", quote.figure, quote.target),
    })
}

/// The files that may quote figures.
fn quoting_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "src", "benches"] {
        walk(&root.join(dir), &mut files);
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "md" || e == "rs"));
    files.sort();
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_quoted_figure_is_in_the_table_it_links_to() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in quoting_files(root) {
        let text = fs::read_to_string(&file).expect("read a quoting file");
        for quote in quotes(&text) {
            checked += 1;
            let shown = file.strip_prefix(root).unwrap_or(&file);
            wrong.extend(
                check(&file, &quote)
                    .map(|w| w.replace(&file.display().to_string(), &shown.display().to_string())),
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} quoted figures are not in their tables:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The docs quote many figures; none found means the reader is broken.
    assert!(checked >= 20, "only {checked} quoted figures found");
}

#[test]
fn a_figure_missing_from_its_table_fails_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("figures-{}", std::process::id()));
    let tables = dir.join("docs/benchmarks");
    fs::create_dir_all(&tables).expect("make a scratch docs tree");
    fs::write(
        tables.join("cost.md"),
        "| server | instructions/msg | syscalls/msg |\n|---|---:|---:|\n\
         | reactor-echo serve | 223 | 2.010 |\n| C epoll_echo | 78 | 2.010 |\n\
         | a ratio (x) | 359,478 (1.04x) | 1.31 | 16292–16996 |\n",
    )
    .expect("write a table");
    fs::write(dir.join("docs/prose.md"), "").expect("write a prose page");
    let page = dir.join("docs/page.md");
    let cases = [
        ("[223](benchmarks/cost.md) per message", None),
        ("[223](benchmarks/cost.md \"reactor-echo serve\")", None),
        ("[2.010](benchmarks/cost.md#section)", None),
        (
            "[359478](benchmarks/cost.md) and [1.04×](benchmarks/cost.md)",
            None,
        ),
        (
            "[224](benchmarks/cost.md)",
            Some("224 is not in benchmarks/cost.md"),
        ),
        ("[2.01](benchmarks/cost.md)", Some("2.01 is not in")),
        ("[1.04](benchmarks/cost.md)", Some("1.04 is not in")),
        (
            "[78](benchmarks/cost.md \"reactor-echo serve\")",
            Some("not in the row"),
        ),
        ("[78](benchmarks/cost.md \"tokio\")", Some("no line of")),
        ("[78](prose.md)", Some("not a generated table")),
        ("[78](benchmarks/gone.md)", Some("does not exist")),
        ("[the table](benchmarks/cost.md), [step 6](prose.md)", None),
        ("[223](../docs/benchmarks/cost.md)", None),
        ("[1.31](benchmarks/cost.md \"a ratio (x)\") and more", None),
        ("[1.31](benchmarks/cost.md\n  \"a ratio (x)\")", None),
        (
            "[1.32](benchmarks/cost.md \"a ratio (x)\")",
            Some("not in the row"),
        ),
        ("[16996](benchmarks/cost.md)", None),
    ];
    for (text, expected) in cases {
        let found: Vec<String> = quotes(text)
            .iter()
            .filter_map(|q| check(&page, q))
            .collect();
        match expected {
            None => assert!(found.is_empty(), "{text}: {found:?}"),
            Some(why) => {
                assert_eq!(found.len(), 1, "{text}: {found:?}");
                assert!(found[0].contains(why), "{text}: {found:?}");
                assert!(found[0].contains("page.md:1:"), "{text}: {found:?}");
            }
        }
    }
    fs::remove_dir_all(&dir).expect("remove the scratch tree");
}

#[test]
fn figures_are_told_from_other_link_texts() {
    for figure in ["223", "2.010", "359,478", "1.04x", "0.94×", "12%", "-6.1%"] {
        assert!(is_figure(figure), "{figure}");
    }
    for text in ["step 6", "x", "1.", ".5", "v2", "1.2.3", "", "a1"] {
        assert!(!is_figure(text), "{text}");
    }
}
