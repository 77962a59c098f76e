//! A transcript split into speaker turns, and the normalised text the rules match on.
//!
//! Providers write transcripts as lines `speaker: text` (`assistant:` / `user:` from Bolna,
//! `agent:` / `customer:` elsewhere); a line without a known label continues the turn
//! before it. A transcript without any label is one turn of unknown speaker, counted as
//! the customer's, since the rules cannot tell.

/// Who said a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Agent,
    Customer,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub speaker: Speaker,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transcript {
    pub turns: Vec<Turn>,
}

const AGENT: &[&str] = &["assistant", "agent", "bot", "ai", "system"];
const CUSTOMER: &[&str] = &[
    "user", "customer", "human", "caller", "lead", "client", "callee",
];

fn label(line: &str) -> Option<(Speaker, &str)> {
    let (head, rest) = line.split_once(':')?;
    let head = head.trim().to_ascii_lowercase();
    if head.len() > 12 {
        return None;
    }
    if AGENT.contains(&head.as_str()) {
        Some((Speaker::Agent, rest))
    } else if CUSTOMER.contains(&head.as_str()) {
        Some((Speaker::Customer, rest))
    } else {
        None
    }
}

impl Transcript {
    pub fn parse(text: &str) -> Transcript {
        let mut turns: Vec<Turn> = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match label(line) {
                Some((speaker, rest)) => turns.push(Turn {
                    speaker,
                    text: rest.trim().to_owned(),
                }),
                None => match turns.last_mut() {
                    Some(last) => {
                        last.text.push(' ');
                        last.text.push_str(line);
                    }
                    None => turns.push(Turn {
                        speaker: Speaker::Unknown,
                        text: line.to_owned(),
                    }),
                },
            }
        }
        Transcript { turns }
    }

    /// Whether anyone but the agent spoke.
    pub fn has_customer_turn(&self) -> bool {
        self.turns
            .iter()
            .any(|t| t.speaker != Speaker::Agent && !t.text.trim().is_empty())
    }

    pub fn word_count(&self) -> usize {
        self.turns
            .iter()
            .map(|t| t.text.split_whitespace().count())
            .sum()
    }

    /// The customer's (and unknown speakers') words, normalised.
    pub fn customer(&self) -> String {
        normalise(
            self.turns
                .iter()
                .filter(|t| t.speaker != Speaker::Agent)
                .map(|t| t.text.as_str()),
        )
    }

    /// The agent's words, normalised.
    pub fn agent(&self) -> String {
        normalise(
            self.turns
                .iter()
                .filter(|t| t.speaker == Speaker::Agent)
                .map(|t| t.text.as_str()),
        )
    }

    /// Everyone's words, normalised.
    pub fn all(&self) -> String {
        normalise(self.turns.iter().map(|t| t.text.as_str()))
    }
}

/// Lower case, contractions spelt out, punctuation dropped (except `:` inside times and
/// `@` `.` inside addresses, which the extractors read from the raw text anyway), one
/// space between words and one at each end, so a phrase matches as ` phrase `.
/// Whether a transcript is worth analysing: at least `MIN_WORDS` words and a customer
/// turn (otherwise the analysis is SKIPPED and no tokens are spent).
pub fn worth_analysing(text: &str) -> bool {
    let t = Transcript::parse(text);
    t.word_count() >= super::MIN_WORDS && t.has_customer_turn()
}

pub fn normalise<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from(" ");
    for part in parts {
        let lowered = part.to_lowercase().replace(['\u{2019}', '`'], "'");
        for word in lowered.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
            let word = word.trim_matches('\'');
            if word.is_empty() {
                continue;
            }
            let spelt = match word {
                "dont" | "don't" => "do not",
                "doesnt" | "doesn't" => "does not",
                "didnt" | "didn't" => "did not",
                "cant" | "can't" | "cannot" => "can not",
                "wont" | "won't" => "will not",
                "isnt" | "isn't" => "is not",
                "im" | "i'm" => "i am",
                "ive" | "i've" => "i have",
                "youve" | "you've" => "you have",
                "its" | "it's" => "it is",
                "whats" | "what's" => "what is",
                "thats" | "that's" => "that is",
                other => other,
            };
            for w in spelt.split(' ') {
                out.push_str(&w.replace('\'', ""));
                out.push(' ');
            }
        }
    }
    out
}

/// Whether `text` (normalised) contains any of `phrases` as whole words.
pub fn has_any(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| {
        let mut needle = String::with_capacity(p.len() + 2);
        needle.push(' ');
        needle.push_str(p);
        needle.push(' ');
        text.contains(&needle)
    })
}

/// How many of the words of `text` (normalised) are among `words` (single words).
pub fn count_any(text: &str, words: &[&str]) -> usize {
    text.split(' ').filter(|w| words.contains(w)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_turns_and_joins_continuations() {
        let t = Transcript::parse(
            "assistant: Hello Priya\nuser: Who is this?\nI am busy\n\nAgent: Sorry",
        );
        assert_eq!(t.turns.len(), 3);
        assert_eq!(t.turns[1].speaker, Speaker::Customer);
        assert_eq!(t.turns[1].text, "Who is this? I am busy");
        assert_eq!(t.turns[2].speaker, Speaker::Agent);
        assert!(t.has_customer_turn());
        assert_eq!(t.word_count(), 9);
    }

    #[test]
    fn unlabelled_text_counts_as_the_customer() {
        let t = Transcript::parse("Please leave a message after the tone");
        assert_eq!(t.turns[0].speaker, Speaker::Unknown);
        assert!(t.has_customer_turn());
        let only_agent = Transcript::parse("assistant: Hello? Hello?");
        assert!(!only_agent.has_customer_turn());
    }

    #[test]
    fn normalises_for_whole_word_matching() {
        let n = normalise(["Don’t CALL me again!! I'm done."].into_iter());
        assert_eq!(n, " do not call me again i am done ");
        assert!(has_any(&n, &["do not call"]));
        assert!(!has_any(&n, &["all me"]));
        assert_eq!(count_any(" no no yes ", &["no"]), 2);
    }
}
