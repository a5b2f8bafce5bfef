//! Env files read the way systemd reads them: `EnvironmentFile=` parsing ([`parse_env_file`]),
//! then the value split into words as systemd splits an unquoted `$VAR` in `ExecStart=`
//! ([`split_words`]). kubeadm's drop-in passes kubelet its flags this way, so kaas-join must read
//! the flags file and `/etc/default/kubelet` exactly as systemd would have.
//!
//! Pure text in, text out; errors are messages that `super::command_line` puts under the file's
//! name.

use std::iter::Peekable;
use std::str::Chars;

/// The words of `var` in an env file's `text` (none when it is not set; the last assignment
/// wins, as in systemd).
pub(super) fn words_of(text: &str, var: &str) -> Result<Vec<String>, String> {
    let vars = parse_env_file(text)?;
    match vars.iter().rev().find(|(k, _)| k == var) {
        Some((_, value)) => split_words(value).map_err(|e| format!("{var}: {e}")),
        None => Ok(Vec::new()),
    }
}

/// Parses an env file as systemd's `EnvironmentFile=` does: `KEY=VALUE` lines, `#`/`;` comments,
/// optional `export `, values with double quotes (backslash escapes `"`, `\`, `` ` ``, `$` and a
/// newline), single quotes (literal) and unquoted backslash escapes; unquoted whitespace inside a
/// value is kept, trailing whitespace is not.
fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut scanner = Scanner {
        chars: text.chars().peekable(),
        line_no: 1,
    };
    let mut vars = Vec::new();
    while let Some(first) = scanner.line_start() {
        match first {
            '\n' => scanner.blank_line(),
            '#' | ';' => scanner.comment(),
            _ => {
                let key = scanner.key()?;
                let value = scanner.value()?;
                vars.push((key, value));
            }
        }
    }
    Ok(vars)
}

/// A position in an env file, with the line number for error messages (values may span lines).
struct Scanner<'t> {
    chars: Peekable<Chars<'t>>,
    line_no: usize,
}

impl Scanner<'_> {
    fn error(&self, what: impl std::fmt::Display) -> String {
        format!("line {}: {what}", self.line_no)
    }

    /// Counts the line a character of a quoted value ends.
    fn count_line(&mut self, c: char) {
        self.line_no += usize::from(c == '\n');
    }

    fn skip(&mut self, blanks: &[char]) {
        while self.chars.next_if(|c| blanks.contains(c)).is_some() {}
    }

    /// Skips the blanks that start a line; its first other character (not consumed), `None` at
    /// the end of the file.
    fn line_start(&mut self) -> Option<char> {
        self.skip(&[' ', '\t', '\r']);
        self.chars.peek().copied()
    }

    /// Consumes the newline of an empty line.
    fn blank_line(&mut self) {
        self.chars.next();
        self.line_no += 1;
    }

    /// Consumes a comment line through its newline.
    fn comment(&mut self) {
        for c in self.chars.by_ref() {
            if c == '\n' {
                break;
            }
        }
        self.line_no += 1;
    }

    /// `KEY=` (maybe `export KEY=`), consumed through the `=`; the name must be a shell name.
    fn key(&mut self) -> Result<String, String> {
        let mut raw = String::new();
        while let Some(c) = self.chars.next_if(|&c| c != '=' && c != '\n') {
            raw.push(c);
        }
        let raw = raw.trim();
        let key = raw.strip_prefix("export ").map_or(raw, str::trim);
        if self.chars.next() != Some('=') {
            return Err(self.error("expected KEY=VALUE"));
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(self.error(format_args!("invalid variable name {key:?}")));
        }
        Ok(key.to_owned())
    }

    /// The value after `KEY=`, consumed through the newline that ends it: blanks after the `=`
    /// and trailing unquoted blanks are dropped.
    fn value(&mut self) -> Result<String, String> {
        self.skip(&[' ', '\t']);
        let mut value = String::new();
        // Length of `value` that trailing-whitespace trimming may not cut (quoted text).
        let mut keep = 0;
        while let Some(c) = self.chars.next() {
            match c {
                '\n' => {
                    self.line_no += 1;
                    break;
                }
                '\\' => {
                    if let Some(c) = self.unquoted_escape() {
                        value.push(c);
                        keep = value.len();
                    }
                }
                '\'' => {
                    self.single_quoted(&mut value)?;
                    keep = value.len();
                }
                '"' => {
                    self.double_quoted(&mut value)?;
                    keep = value.len();
                }
                c => value.push(c),
            }
        }
        let trimmed = value[keep..].trim_end_matches([' ', '\t', '\r']).len();
        value.truncate(keep + trimmed);
        Ok(value)
    }

    /// After an unquoted backslash: the character it escapes; `None` for a backslash-newline
    /// (the value goes on on the next line) and at the end of the file.
    fn unquoted_escape(&mut self) -> Option<char> {
        match self.chars.next() {
            Some('\n') => {
                self.line_no += 1;
                None
            }
            other => other,
        }
    }

    /// After a `'`: everything up to the closing `'`, literally.
    fn single_quoted(&mut self, value: &mut String) -> Result<(), String> {
        let opened = self.line_no;
        loop {
            match self.chars.next() {
                Some('\'') => return Ok(()),
                Some(c) => {
                    self.count_line(c);
                    value.push(c);
                }
                None => return Err(unterminated(opened, '\'')),
            }
        }
    }

    /// After a `"`: up to the closing `"`; a backslash escapes `"`, `\`, `` ` ``, `$` and a
    /// newline (dropped), and is kept before anything else.
    fn double_quoted(&mut self, value: &mut String) -> Result<(), String> {
        let opened = self.line_no;
        loop {
            match self.chars.next() {
                Some('"') => return Ok(()),
                Some('\\') => match self.chars.next() {
                    Some('\n') => self.line_no += 1,
                    Some(c @ ('"' | '\\' | '`' | '$')) => value.push(c),
                    Some(c) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(unterminated(opened, '"')),
                },
                Some(c) => {
                    self.count_line(c);
                    value.push(c);
                }
                None => return Err(unterminated(opened, '"')),
            }
        }
    }
}

/// A quote never closed: named at the line it opens on (the end of the file is past the last
/// line, and a one-line file has no "line 2").
fn unterminated(opened: usize, quote: char) -> String {
    format!("line {opened}: the {quote} opened here is never closed: close it or remove it")
}

/// Splits a value into words as systemd splits an unquoted `$VAR` in `ExecStart=`: at
/// whitespace, with double quotes, single quotes and backslash escapes.
fn split_words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = value.chars();
    let mut word: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\\' => {
                let w = word.get_or_insert_with(String::new);
                if let Some(c) = chars.next() {
                    w.push(c);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated ' in arguments".to_owned()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => w.push(c),
                            None => return Err("unterminated \" in arguments".to_owned()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \" in arguments".to_owned()),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_values() {
        let text = "# kubeadm\nKUBELET_KUBEADM_ARGS=\"--a=b --node-labels='x=1,y=2' --c=\\\"d e\\\"\"\n\
                    ; other\nexport OTHER='lit $x \\n'\nUNQUOTED=--v=2   --max-pods=50   \nCONT=a\\\nb\n";
        let vars = parse_env_file(text).unwrap();
        assert_eq!(
            vars,
            vec![
                (
                    "KUBELET_KUBEADM_ARGS".to_owned(),
                    "--a=b --node-labels='x=1,y=2' --c=\"d e\"".to_owned()
                ),
                ("OTHER".to_owned(), "lit $x \\n".to_owned()),
                ("UNQUOTED".to_owned(), "--v=2   --max-pods=50".to_owned()),
                ("CONT".to_owned(), "ab".to_owned()),
            ]
        );
        assert_eq!(
            split_words(&vars[0].1).unwrap(),
            vec!["--a=b", "--node-labels=x=1,y=2", "--c=d e"]
        );
        assert_eq!(
            split_words(&vars[2].1).unwrap(),
            vec!["--v=2", "--max-pods=50"]
        );
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), vec![""]);
        assert_eq!(split_words("a\\ b c").unwrap(), vec!["a b", "c"]);
        assert!(split_words("'open").is_err());
        assert!(parse_env_file("A=\"open\n").is_err());
        assert!(parse_env_file("no equals sign\n").is_err());
        assert!(parse_env_file("BAD-NAME=1\n").is_err());
    }

    /// The details the split into steps must keep: line numbers across quoted and continued
    /// lines, quoted trailing blanks, `export` with extra blanks, and an escaped newline inside
    /// double quotes.
    #[test]
    fn env_file_edge_cases() {
        let vars =
            parse_env_file("\r\n  \t\n export   A = ' kept  '  \nB=\"x\\\ny\"\nC=a\\\\b\\\nD=\\\n")
                .unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".to_owned(), " kept  ".to_owned()),
                ("B".to_owned(), "xy".to_owned()),
                ("C".to_owned(), "a\\bD=".to_owned()),
            ]
        );
        assert_eq!(
            parse_env_file("A='x\ny'\n\n# c\nB=\"open").unwrap_err(),
            "line 5: the \" opened here is never closed: close it or remove it"
        );
        // A one-line file: the quote is on line 1, not on the line after the end.
        assert_eq!(
            parse_env_file("KUBELET_EXTRA_ARGS=\"--max-pods=5\n").unwrap_err(),
            "line 1: the \" opened here is never closed: close it or remove it"
        );
        assert!(parse_env_file("K='x\n")
            .unwrap_err()
            .starts_with("line 1: the '"));
        assert_eq!(
            parse_env_file("A=1\nno equals\n").unwrap_err(),
            "line 2: expected KEY=VALUE"
        );
        assert_eq!(
            parse_env_file("; c\nexport A-B=1\n").unwrap_err(),
            "line 2: invalid variable name \"A-B\""
        );
        // `export` alone is a name.
        assert_eq!(
            parse_env_file("export =1").unwrap(),
            vec![("export".into(), "1".into())]
        );
        assert_eq!(
            parse_env_file("A=\\").unwrap(),
            vec![("A".into(), "".into())]
        );
        assert_eq!(
            words_of("X=1\nX=\"'a b' c\"\n", "X").unwrap(),
            vec!["a b", "c"],
            "the last assignment wins"
        );
        assert_eq!(words_of("X=1\n", "Y").unwrap(), Vec::<String>::new());
        assert_eq!(
            words_of("X=\"'open\"\n", "X").unwrap_err(),
            "X: unterminated ' in arguments"
        );
    }
}
