//! Cutting a long chat message into parts Twitch accepts.

/// Twitch rejects chat messages longer than this many characters.
pub const MAX_CHARS: usize = 500;

/// Splits `message` into parts of at most `max` characters, on whitespace where possible; a
/// word longer than `max` is cut. A message that fits is returned as it is; in a split one,
/// the whitespace where it was cut is dropped (Twitch trims each message anyway).
pub fn split(message: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    if message.chars().count() <= max {
        return vec![message.to_owned()];
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut current_chars = 0;
    for word in message.split_whitespace() {
        let mut word = word;
        let mut word_chars = word.chars().count();
        if current_chars > 0 && current_chars + 1 + word_chars <= max {
            current.push(' ');
            current.push_str(word);
            current_chars += 1 + word_chars;
            continue;
        }
        if current_chars > 0 {
            parts.push(std::mem::take(&mut current));
        }
        while word_chars > max {
            let cut = word.char_indices().nth(max).map_or(word.len(), |(i, _)| i);
            parts.push(word[..cut].to_owned());
            word = &word[cut..];
            word_chars -= max;
        }
        current.push_str(word);
        current_chars = word_chars;
    }
    if current_chars > 0 {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_stay_whole() {
        assert_eq!(split("  hi  there ", 500), ["  hi  there "]);
    }

    #[test]
    fn splits_on_word_boundaries() {
        assert_eq!(split("aaa bbb ccc ddd", 7), ["aaa bbb", "ccc ddd"]);
        assert_eq!(split("aaa bbb ccc", 8), ["aaa bbb", "ccc"]);
    }

    #[test]
    fn cuts_words_longer_than_a_part_by_characters() {
        assert_eq!(split("xy ééééé z", 3), ["xy", "ééé", "éé", "z"]);
        assert_eq!(split("xy ééééé z", 4), ["xy", "éééé", "é z"]);
    }

    #[test]
    fn real_limit_keeps_every_word() {
        let message = "word ".repeat(300);
        let parts = split(&message, MAX_CHARS);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_CHARS));
        assert_eq!(parts.join(" "), message.trim_end());
    }
}
