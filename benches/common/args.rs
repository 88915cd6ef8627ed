//! A bench's options after `--`: `--name VALUE` pairs and bare flags such
//! as `--quick`. Anything it is not asked about (cargo bench passes
//! `--bench`) is ignored. A value that does not parse stops the bench with
//! the option's name, as a typo should.

use std::str::FromStr;

/// The command line of this bench process.
pub struct Args(Vec<String>);

impl Args {
    /// This process's arguments.
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    /// Whether the bare flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// The value after `name`, parsed; `None` if `name` was not given.
    pub fn value<T: FromStr>(&self, name: &str) -> Option<T> {
        let at = self.0.iter().position(|a| a == name)?;
        let text = self.0.get(at + 1).map_or("", String::as_str);
        Some(
            text.parse()
                .unwrap_or_else(|_| panic!("{name} needs a value, not {text:?}")),
        )
    }

    /// The comma-separated list after `name` (`--conns 100,1000`), parsed.
    pub fn list<T: FromStr>(&self, name: &str) -> Option<Vec<T>> {
        let text: String = self.value(name)?;
        Some(
            text.split(',')
                .map(|item| {
                    item.parse()
                        .unwrap_or_else(|_| panic!("{name} needs a list, not {text:?}"))
                })
                .collect(),
        )
    }
}
