//! Strength estimation and the common-password rule, both read from one zxcvbn analysis.

use zxcvbn::matching::Match;
use zxcvbn::matching::patterns::{DictionaryPattern, MatchPattern};

/// What one zxcvbn run says about a password.
pub(super) struct StrengthReport {
    /// zxcvbn's score, 0..=4.
    pub score: u8,
    /// The whole password is an entry of zxcvbn's bundled list of common passwords (ignoring
    /// case and its l33t substitutions).
    pub common: bool,
    /// zxcvbn's warning and suggestions, when it has any. Fixed English sentences: they never
    /// quote the password.
    pub feedback: Option<String>,
}

/// Runs zxcvbn once. Callers bound the input length first: zxcvbn looks at the first 100
/// characters only, but even that is tens of milliseconds in the worst case.
pub(super) fn analyse(password: &str, user_inputs: &[&str]) -> StrengthReport {
    let user_words = expanded_user_inputs(user_inputs);
    let user_words: Vec<&str> = user_words.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(password, &user_words);
    let feedback = entropy
        .feedback()
        .map(|feedback| feedback.to_string().trim().to_owned())
        .filter(|text| !text.is_empty());
    StrengthReport {
        score: u8::from(entropy.score()),
        common: is_whole_common_password(password.chars().count(), entropy.sequence()),
        feedback,
    }
}

/// zxcvbn matches user inputs only as whole words, so an email address alone would not catch
/// a password built from its local part. Each input is therefore also given as its local part
/// (for emails) and its words (split at anything not alphanumeric), keeping parts of at least
/// three characters so that initials do not mark every password containing them.
fn expanded_user_inputs(user_inputs: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut add = |word: &str| {
        let word = word.trim().to_lowercase();
        if word.chars().count() >= 3 && !words.contains(&word) {
            words.push(word);
        }
    };
    for input in user_inputs {
        add(input);
        if let Some((local_part, _domain)) = input.rsplit_once('@') {
            add(local_part);
        }
        for word in input.split(|c: char| !c.is_alphanumeric()) {
            add(word);
        }
    }
    words
}

/// True when zxcvbn's best explanation of the password is a single match, spanning all of it,
/// in its "passwords" frequency list (zxcvbn lower-cases before matching and also tries its
/// l33t table, so "P@ssw0rd" counts). Reversed entries do not count: they are not on the list.
fn is_whole_common_password(password_chars: usize, sequence: &[Match]) -> bool {
    let [only] = sequence else {
        return false;
    };
    // `i` and `j` are inclusive character indexes. zxcvbn analyses only the first 100
    // characters, so a longer password never spans and is never "common".
    let spans_whole_password = only.i == 0 && only.j + 1 == password_chars;
    match &only.pattern {
        MatchPattern::Dictionary(pattern) => {
            spans_whole_password && !pattern.reversed && is_passwords_dictionary(pattern)
        }
        _ => false,
    }
}

/// zxcvbn 3.1 exports `DictionaryPattern::dictionary_name` but not its type (`DictionaryType`
/// lives in a private module), so the variant cannot be named here. Its `Debug` text is the
/// variant name; the unit tests pin that "password" is found and an English word is not.
fn is_passwords_dictionary(pattern: &DictionaryPattern) -> bool {
    format!("{:?}", pattern.dictionary_name) == "Passwords"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_inputs_are_expanded_into_local_part_and_words() {
        assert_eq!(
            expanded_user_inputs(&["Ada.Lovelace@Example.com", "al", "ada"]),
            ["ada.lovelace@example.com", "ada.lovelace", "ada", "lovelace", "example", "com"]
        );
        assert!(expanded_user_inputs(&["", "  ", "x"]).is_empty());
    }

    #[test]
    fn common_means_the_whole_password_is_on_the_passwords_list() {
        let cases = [
            ("password", true),
            ("PassWord", true),
            ("p@ssw0rd", true),
            ("password123", true),
            ("qwerty", true),
            ("drowssap", false),
            // On zxcvbn's English list but not its passwords list.
            ("government", false),
            ("password-tractor-harbour", false),
            ("", false),
        ];
        for (password, common) in cases {
            assert_eq!(analyse(password, &[]).common, common, "{password:?}");
        }
    }
}
