//! Percent-encoding of URI userinfo (user and password), kept local to avoid a dependency.

/// Encodes every byte except RFC 3986 unreserved characters.
pub(crate) fn encode_userinfo(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_userinfo;

    #[test]
    fn encodes_reserved_and_non_ascii() {
        assert_eq!(encode_userinfo("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_userinfo("p@ss:w/rd%"), "p%40ss%3Aw%2Frd%25");
        assert_eq!(encode_userinfo("é"), "%C3%A9");
    }
}
