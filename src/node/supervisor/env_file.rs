//! Env files read the way systemd reads them: `EnvironmentFile=` parsing ([`parse_env_file`]),
//! then the value split into words as systemd splits an unquoted `$VAR` in `ExecStart=`
//! ([`split_words`]). kubeadm's drop-in passes kubelet its flags this way, so kaas-join must read
//! the flags file and `/etc/default/kubelet` exactly as systemd would have.
//!
//! Pure text in, text out; errors are messages that `super::command_line` puts under the file's
//! name.

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
    let mut vars = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line_no = 1;
    loop {
        // Start of a line: skip blanks.
        while matches!(chars.peek(), Some(' ' | '\t' | '\r')) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '\n' {
            chars.next();
            line_no += 1;
            continue;
        }
        if first == '#' || first == ';' {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            line_no += 1;
            continue;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == '\n' {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut key = key.trim().to_owned();
        if let Some(rest) = key.strip_prefix("export ") {
            key = rest.trim().to_owned();
        }
        if chars.next() != Some('=') {
            return Err(format!("line {line_no}: expected KEY=VALUE"));
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("line {line_no}: invalid variable name {key:?}"));
        }
        while matches!(chars.peek(), Some(' ' | '\t')) {
            chars.next();
        }
        let mut value = String::new();
        // Length of `value` that trailing-whitespace trimming may not cut (quoted text).
        let mut keep = 0;
        while let Some(c) = chars.next() {
            match c {
                '\n' => {
                    line_no += 1;
                    break;
                }
                '\\' => match chars.next() {
                    Some('\n') => line_no += 1,
                    Some(c) => {
                        value.push(c);
                        keep = value.len();
                    }
                    None => {}
                },
                '\'' => {
                    loop {
                        match chars.next() {
                            Some('\'') => break,
                            Some(c) => {
                                line_no += usize::from(c == '\n');
                                value.push(c);
                            }
                            None => return Err(format!("line {line_no}: unterminated '")),
                        }
                    }
                    keep = value.len();
                }
                '"' => {
                    loop {
                        match chars.next() {
                            Some('"') => break,
                            Some('\\') => match chars.next() {
                                Some('\n') => line_no += 1,
                                Some(c @ ('"' | '\\' | '`' | '$')) => value.push(c),
                                Some(c) => {
                                    value.push('\\');
                                    value.push(c);
                                }
                                None => return Err(format!("line {line_no}: unterminated \"")),
                            },
                            Some(c) => {
                                line_no += usize::from(c == '\n');
                                value.push(c);
                            }
                            None => return Err(format!("line {line_no}: unterminated \"")),
                        }
                    }
                    keep = value.len();
                }
                c => value.push(c),
            }
        }
        let trimmed = value[keep..].trim_end_matches([' ', '\t', '\r']).len();
        value.truncate(keep + trimmed);
        vars.push((key, value));
    }
    Ok(vars)
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
}
