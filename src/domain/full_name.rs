use super::Problem;

/// A person's full name as on the KTP: letters of any script, spaces and
/// the punctuation names use. Many Indonesians have a single name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub fn parse(input: &str) -> Result<FullName, Problem> {
        let collapsed = input.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            return Err(Problem::NameEmpty);
        }
        if collapsed.chars().count() > 100 {
            return Err(Problem::NameTooLong);
        }
        if !collapsed
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '.' | ',' | '\'' | '-' | '’'))
        {
            return Err(Problem::NameCharacters);
        }
        Ok(FullName(collapsed))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_people_have() {
        assert_eq!(FullName::parse("  Sukarno ").unwrap().as_str(), "Sukarno");
        assert_eq!(
            FullName::parse("Ni Luh  Putu Ayu").unwrap().as_str(),
            "Ni Luh Putu Ayu"
        );
        assert!(FullName::parse("Drs. H. Abdul Rahman, S.H.").is_ok());
        assert!(FullName::parse("Ma'ruf Amin").is_ok());
    }

    #[test]
    fn refuses_empty_long_and_digits() {
        assert_eq!(FullName::parse(" "), Err(Problem::NameEmpty));
        assert_eq!(FullName::parse(&"a".repeat(101)), Err(Problem::NameTooLong));
        assert_eq!(FullName::parse("Budi 2"), Err(Problem::NameCharacters));
        assert_eq!(FullName::parse("<script>"), Err(Problem::NameCharacters));
    }
}
