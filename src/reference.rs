//! Short reference codes that a citizen can read out on the phone, e.g.
//! `ERR-7K3Q-9XWZ`. The alphabet leaves out look-alikes (0/O, 1/I/L, U/V).

use rand::Rng;

const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTWXYZ";

/// A reference code: a three-letter prefix naming the kind of event and
/// eight random characters from a CSPRNG.
pub fn new_reference(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut pick = || ALPHABET[rng.random_range(0..ALPHABET.len())] as char;
    let first: String = (0..4).map(|_| pick()).collect();
    let second: String = (0..4).map(|_| pick()).collect();
    format!("{prefix}-{first}-{second}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_distinct() {
        let a = new_reference("ERR");
        let b = new_reference("ERR");
        assert_ne!(a, b);
        assert_eq!(a.len(), 13);
        assert!(a.starts_with("ERR-"));
        for c in a[4..].chars().filter(|c| *c != '-') {
            assert!(!"01ILOUV".contains(c), "ambiguous {c} in {a}");
        }
    }
}
