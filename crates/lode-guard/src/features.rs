//! URL-only features (feature version 1).
//!
//! Everything here is pure and mirrored line by line in `extension/guard.js`: the same
//! WHATWG URL parsing (`url` crate / the browser's `URL`), the same registrable domain
//! (the Public Suffix List), the same counts in the same order and the same FNV-1a hash for
//! the n-gram buckets. The only operations that may differ between Rust and JS in the last
//! bit are `ln_1p`/`log2` (each within an ulp), which the parity test bounds at 1e-9.

use crate::vocab::Vocab;
use publicsuffix::Psl;
use std::collections::BTreeSet;
use std::sync::OnceLock;
use thiserror::Error;

/// Version of the feature definitions; a model records the version it was trained with.
pub const FEATURE_VERSION: u32 = 1;

/// Longest URL scored, in bytes (UTF-8). Longer input is refused, not truncated.
pub const MAX_URL_BYTES: usize = 8192;

/// Names of the dense features, in the order of `Features::dense`.
pub const DENSE_NAMES: [&str; 29] = [
    "len_href",
    "len_host",
    "len_path",
    "len_query",
    "host_dots",
    "host_hyphens",
    "host_digits",
    "path_digits",
    "path_special",
    "userinfo",
    "double_slash_in_path",
    "host_entropy",
    "subdomain_depth",
    "ip_host",
    "punycode",
    "explicit_port",
    "scheme_http",
    "risky_tld",
    "brand_outside_domain",
    "brand_in_label",
    "typosquat",
    "bait_words",
    "label_len",
    "label_hyphens",
    "host_is_domain_or_www",
    "path_segments",
    "script_extension",
    "label_digits",
    "longest_host_label",
];

/// Number of dense features.
pub const DENSE_LEN: usize = DENSE_NAMES.len();

/// Why a URL cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("empty URL")]
    Empty,
    #[error("URL is {len} bytes long; the limit is {max} bytes")]
    TooLong { len: usize, max: usize },
    #[error("malformed URL: {0}")]
    Malformed(String),
    #[error("unsupported scheme {0:?}: only http and https URLs are scored")]
    UnsupportedScheme(String),
    #[error("URL has no host")]
    NoHost,
}

/// The parts of a parsed URL the features look at. All ASCII: the WHATWG serializer
/// percent-encodes paths and queries and turns host names into punycode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// The serialized URL without its fragment.
    pub href: String,
    pub https: bool,
    /// Host name, lower case, without a trailing dot; IPv6 in brackets.
    pub host: String,
    /// Registrable domain (eTLD+1) by the Public Suffix List; the host itself for IP
    /// literals and for hosts that are a public suffix or a single label.
    pub registrable: String,
    pub ip: bool,
    pub explicit_port: bool,
    pub userinfo: bool,
    pub path: String,
    /// Query without its `?`; empty when absent.
    pub query: String,
}

/// Parses and normalizes a URL for scoring.
pub fn parse_url(input: &str) -> Result<UrlParts, UrlError> {
    if input.len() > MAX_URL_BYTES {
        return Err(UrlError::TooLong {
            len: input.len(),
            max: MAX_URL_BYTES,
        });
    }
    if input.trim().is_empty() {
        return Err(UrlError::Empty);
    }
    let mut url = url::Url::parse(input).map_err(|e| UrlError::Malformed(e.to_string()))?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(UrlError::UnsupportedScheme(other.to_string())),
    };
    let ip = matches!(
        url.host(),
        Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_))
    );
    let host = url.host_str().ok_or(UrlError::NoHost)?;
    let host = host.strip_suffix('.').unwrap_or(host).to_string();
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    let registrable = if ip {
        host.clone()
    } else {
        registrable_domain(&host)
    };
    url.set_fragment(None);
    Ok(UrlParts {
        https,
        ip,
        explicit_port: url.port().is_some(),
        userinfo: !url.username().is_empty() || url.password().is_some(),
        path: url.path().to_string(),
        query: url.query().unwrap_or("").to_string(),
        href: url.as_str().to_string(),
        host,
        registrable,
    })
}

/// Registrable domain of a (lower-case, ASCII) host name by the Public Suffix List, or the
/// host itself when it has none (a public suffix, a single label).
///
/// Only the last 8 labels are looked up (no rule has more than 7), each cut to 32 bytes
/// (no rule label is longer than 31) and with anything but `[a-z0-9-]` (and a leading or
/// trailing `-`) replaced by `a`: labels no rule contains, so the answer is unchanged, and
/// the lookup's cost is bounded. The JS scorer does exactly the same. The label count of
/// the answer is mapped back onto the original host.
pub fn registrable_domain(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').collect();
    let tail: Vec<String> = labels[labels.len().saturating_sub(8)..]
        .iter()
        .map(|l| sanitize_label(l))
        .collect();
    let joined = tail.join(".");
    match suffix_list().domain(joined.as_bytes()) {
        Some(found) => {
            let k = found
                .as_bytes()
                .split(|&b| b == b'.')
                .count()
                .min(labels.len());
            labels[labels.len() - k..].join(".")
        }
        None => host.to_string(),
    }
}

/// The Public Suffix List snapshot both scorers use: the rules npm `psl` 1.15.0 ships, in
/// ASCII, exported by `guard/export-psl.mjs` (`extension/psl-rules.js` holds the same).
const PSL_RULES: &str = include_str!("../data/psl-rules.txt");

fn suffix_list() -> &'static publicsuffix::List {
    static LIST: OnceLock<publicsuffix::List> = OnceLock::new();
    LIST.get_or_init(|| match PSL_RULES.parse() {
        Ok(list) => list,
        // The committed list is parsed by every test run; it cannot fail at run time.
        Err(e) => panic!("embedded public suffix list: {e}"),
    })
}

fn sanitize_label(label: &str) -> String {
    let mut s: Vec<u8> = label
        .bytes()
        .take(32)
        .map(|b| {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
                b
            } else {
                b'a'
            }
        })
        .collect();
    if s.is_empty() {
        s.push(b'a');
    }
    if s[0] == b'-' {
        s[0] = b'a';
    }
    let last = s.len() - 1;
    if s[last] == b'-' {
        s[last] = b'a';
    }
    String::from_utf8(s).unwrap_or_default()
}

/// A URL's feature vector: dense values plus the sorted set of active hashed buckets
/// (each with value 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub dense: [f64; DENSE_LEN],
    pub buckets: Vec<u32>,
}

/// 32-bit FNV-1a over `prefix` then `bytes`.
pub fn fnv1a(prefix: &[u8], bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in prefix.iter().chain(bytes) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn ln1p_count(n: usize) -> f64 {
    (n as f64).ln_1p()
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Shannon entropy (bits per byte) of `s`, summed over byte values in ascending order.
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s.as_bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    let mut h = 0.0;
    for &c in &counts {
        if c > 0 {
            let p = f64::from(c) / n;
            h -= p * p.log2();
        }
    }
    h
}

/// Whether the edit distance of `a` and `b` is exactly 1 (`levenshtein(a, b) == 1`) in
/// linear time: one substitution for equal lengths, one insertion when they differ by one.
pub fn one_edit_apart(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match long.len() - short.len() {
        0 => short.iter().zip(long).filter(|(x, y)| x != y).count() == 1,
        1 => {
            let i = short.iter().zip(long).take_while(|(x, y)| x == y).count();
            short[i..] == long[i + 1..]
        }
        _ => false,
    }
}

/// Edit distance between two byte strings (insert, delete, substitute).
pub fn levenshtein(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Undoes the usual look-alike substitutions: digits for letters, then `rn`→`m`, `vv`→`w`.
pub fn deconfuse(label: &str) -> String {
    let mapped: String = label
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '7' => 't',
            other => other,
        })
        .collect();
    mapped.replace("rn", "m").replace("vv", "w")
}

const SPECIAL: &[u8] = b"@~_%=&!*,;:+$'()";
const SCRIPT_EXTENSIONS: [&str; 7] = [".php", ".html", ".htm", ".asp", ".aspx", ".cgi", ".js"];

/// Whether `text` names `brand`: an alphanumeric run equal to it, or containing it when
/// the brand has at least 6 letters (so "purchase" does not name "chase").
pub fn mentions(text: &str, brand: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|t| t == brand || (brand.len() >= 6 && t.contains(brand)))
}

/// Tokens of lower-case alphanumeric runs of 2 to 24 bytes.
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| (2..=24).contains(&t.len()))
}

/// Computes the features of a parsed URL with the model's vocabulary and bucket count
/// (a power of two).
pub fn extract(parts: &UrlParts, vocab: &Vocab, buckets: u32) -> Features {
    let host = parts.host.as_str();
    let reg = parts.registrable.as_str();
    let href = parts.href.as_str();
    let path_query = format!("{}?{}", parts.path, parts.query).to_ascii_lowercase();
    // The part of the host before the registrable domain ("" when there is none).
    let sub = if host.len() > reg.len() {
        &host[..host.len() - reg.len() - 1]
    } else {
        ""
    };
    // First label of the registrable domain; empty for IP literals.
    let label = if parts.ip {
        ""
    } else {
        reg.split('.').next().unwrap_or("")
    };
    let tld = if parts.ip {
        ""
    } else {
        host.rsplit('.').next().unwrap_or("")
    };
    let outside = format!("{sub} {path_query}");
    let lower_href = href.to_ascii_lowercase();
    let after_scheme = lower_href
        .split_once("://")
        .map_or(lower_href.as_str(), |(_, r)| r);

    let mut brand_outside = false;
    let mut brand_in_label = false;
    let mut typosquat = false;
    if !label.is_empty() {
        let deconfused = deconfuse(label);
        for brand in &vocab.brands {
            let b = brand.as_str();
            if label == b {
                continue;
            }
            if mentions(&outside, b) {
                brand_outside = true;
            }
            if mentions(label, b) {
                brand_in_label = true;
            }
            if (b.len() >= 5 && one_edit_apart(label.as_bytes(), b.as_bytes())) || deconfused == b {
                typosquat = true;
            }
        }
    }
    let bait = vocab
        .bait_words
        .iter()
        .filter(|w| after_scheme.contains(w.as_str()))
        .count();
    let subdomain_depth = if sub.is_empty() {
        0
    } else {
        sub.split('.').count()
    };
    let count = |s: &str, pred: &dyn Fn(u8) -> bool| s.bytes().filter(|&b| pred(b)).count();
    let path_lower = parts.path.to_ascii_lowercase();

    let dense = [
        ln1p_count(href.len()),
        ln1p_count(host.len()),
        ln1p_count(parts.path.len()),
        ln1p_count(parts.query.len()),
        ln1p_count(count(host, &|b| b == b'.')),
        ln1p_count(count(host, &|b| b == b'-')),
        ln1p_count(count(host, &|b| b.is_ascii_digit())),
        ln1p_count(count(&path_query, &|b| b.is_ascii_digit())),
        ln1p_count(count(&path_query, &|b| SPECIAL.contains(&b))),
        flag(parts.userinfo),
        flag(parts.path.contains("//")),
        entropy(host),
        ln1p_count(subdomain_depth),
        flag(parts.ip),
        flag(host.split('.').any(|l| l.starts_with("xn--"))),
        flag(parts.explicit_port),
        flag(!parts.https),
        flag(vocab.risky_tlds.iter().any(|t| t == tld)),
        flag(brand_outside),
        flag(brand_in_label),
        flag(typosquat),
        ln1p_count(bait),
        ln1p_count(label.len()),
        ln1p_count(count(label, &|b| b == b'-')),
        flag(sub.is_empty() || sub == "www"),
        ln1p_count(parts.path.split('/').filter(|s| !s.is_empty()).count()),
        flag(SCRIPT_EXTENSIONS.iter().any(|e| path_lower.ends_with(e))),
        ln1p_count(count(label, &|b| b.is_ascii_digit())),
        ln1p_count(host.split('.').map(str::len).max().unwrap_or(0)),
    ];

    let mask = buckets - 1;
    let mut set = BTreeSet::new();
    // Character 3- and 4-grams of the host with boundary marks.
    let marked = format!("^{host}$");
    let mb = marked.as_bytes();
    for n in [3usize, 4] {
        let prefix = [b'h', b'0' + n as u8];
        for w in mb.windows(n) {
            set.insert(fnv1a(&prefix, w) & mask);
        }
    }
    for t in tokens(sub) {
        set.insert(fnv1a(b"s", t.as_bytes()) & mask);
    }
    for t in tokens(&path_query) {
        set.insert(fnv1a(b"p", t.as_bytes()) & mask);
    }
    set.insert(fnv1a(b"t", tld.as_bytes()) & mask);
    Features {
        dense,
        buckets: set.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(u: &str) -> UrlParts {
        parse_url(u).unwrap()
    }

    #[test]
    fn parses_and_normalizes() {
        let p = parts("HTTPS://User:pw@Login.PayPal.com.Example.co.uk.:8443/a/../b?x=1#frag");
        assert_eq!(p.host, "login.paypal.com.example.co.uk");
        assert_eq!(p.registrable, "example.co.uk");
        assert!(p.https && p.userinfo && p.explicit_port && !p.ip);
        assert_eq!(p.path, "/b");
        assert_eq!(p.query, "x=1");
        assert!(!p.href.contains("frag"));
        let ip = parts("http://192.168.0.1/login");
        assert!(ip.ip);
        assert_eq!(ip.registrable, "192.168.0.1");
        assert!(parts("http://[::1]:8080/").ip);
        // Internationalized names become punycode.
        assert_eq!(parts("https://münchen.de/").host, "xn--mnchen-3ya.de");
        // Private-section suffixes give each site its own registrable domain.
        assert_eq!(
            parts("https://a.b.netlify.app/").registrable,
            "b.netlify.app"
        );
        assert_eq!(parts("https://github.io/").registrable, "github.io");
        assert_eq!(parts("http://localhost/").registrable, "localhost");
        // The deepest rule has 7 labels (a wildcard); its registrable domain has 8.
        assert_eq!(
            parts("https://a.x.y.001.test.code-builder-stg.platform.salesforce.com/").registrable,
            "x.y.001.test.code-builder-stg.platform.salesforce.com"
        );
        // Exception rules: www.ck is registrable although *.ck is a suffix.
        assert_eq!(parts("https://a.www.ck/").registrable, "www.ck");
        assert_eq!(parts("https://a.b.ck/").registrable, "a.b.ck");
        // Labels no rule has are looked up sanitized, and the real labels come back.
        assert_eq!(parts("https://a_b.c_d.co.uk/").registrable, "c_d.co.uk");
        assert_eq!(parts("https://x.y.unknowntld/").registrable, "y.unknowntld");
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        assert_eq!(parse_url(""), Err(UrlError::Empty));
        assert_eq!(parse_url("   "), Err(UrlError::Empty));
        assert!(matches!(
            parse_url("not a url"),
            Err(UrlError::Malformed(_))
        ));
        assert!(matches!(
            parse_url("http://exa mple.com/"),
            Err(UrlError::Malformed(_))
        ));
        assert!(matches!(
            parse_url("http://[::1/"),
            Err(UrlError::Malformed(_))
        ));
        assert_eq!(
            parse_url("ftp://example.com/"),
            Err(UrlError::UnsupportedScheme("ftp".into()))
        );
        assert_eq!(
            parse_url("javascript:alert(1)"),
            Err(UrlError::UnsupportedScheme("javascript".into()))
        );
        let huge = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(
            parse_url(&huge),
            Err(UrlError::TooLong {
                len: huge.len(),
                max: MAX_URL_BYTES
            })
        );
        // Exactly at the limit is accepted.
        let edge = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES - 20));
        assert_eq!(edge.len(), MAX_URL_BYTES);
        assert!(parse_url(&edge).is_ok());
    }

    #[test]
    fn helpers() {
        assert_eq!(levenshtein(b"paypal", b"paypa1"), 1);
        assert_eq!(levenshtein(b"paypal", b"payppal"), 1);
        assert_eq!(levenshtein(b"paypal", b"apyapl"), 4);
        assert_eq!(levenshtein(b"", b"abc"), 3);
        // one_edit_apart is levenshtein == 1, on every pair of a small alphabet's words.
        let words: Vec<Vec<u8>> = (0..3u32)
            .flat_map(|len| {
                (0..3u32.pow(len)).map(move |mut k| {
                    (0..len)
                        .map(|_| {
                            let c = b"abc"[(k % 3) as usize];
                            k /= 3;
                            c
                        })
                        .collect()
                })
            })
            .chain([b"paypal".to_vec(), b"paypa1".to_vec(), b"payal".to_vec()])
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(one_edit_apart(a, b), levenshtein(a, b) == 1, "{a:?} {b:?}");
            }
        }
        assert_eq!(deconfuse("rnicr0s0ft"), "microsoft");
        assert_eq!(deconfuse("vvellsfarg0"), "wellsfargo");
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-12);
        // FNV-1a reference values.
        assert_eq!(fnv1a(b"", b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"", b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"fo", b"obar"), 0xbf9c_f968);
    }

    #[test]
    fn brand_and_typosquat_features() {
        let v = Vocab::default_v1();
        let idx = |n: &str| DENSE_NAMES.iter().position(|x| *x == n).unwrap();
        let f = |u: &str| extract(&parts(u), &v, 4096);
        let official = f("https://www.paypal.com/signin");
        assert_eq!(official.dense[idx("brand_outside_domain")], 0.0);
        assert_eq!(official.dense[idx("typosquat")], 0.0);
        assert_eq!(official.dense[idx("host_is_domain_or_www")], 1.0);
        let sub = f("http://paypal.com.secure-login.example.xyz/update");
        assert_eq!(sub.dense[idx("brand_outside_domain")], 1.0);
        assert_eq!(sub.dense[idx("risky_tld")], 1.0);
        assert_eq!(sub.dense[idx("scheme_http")], 1.0);
        // paypal.com.secure-login before example.xyz.
        assert_eq!(sub.dense[idx("subdomain_depth")], (3f64).ln_1p());
        assert!(sub.dense[idx("bait_words")] >= (2f64).ln_1p());
        assert_eq!(f("https://paypa1.com/").dense[idx("typosquat")], 1.0);
        assert_eq!(f("https://rnicrosoft.com/").dense[idx("typosquat")], 1.0);
        assert_eq!(
            f("https://paypal-verify.com/").dense[idx("brand_in_label")],
            1.0
        );
        assert_eq!(f("https://xn--pypal-4ve.com/").dense[idx("punycode")], 1.0);
        let b = f("https://example.com/a-b/c");
        assert!(b.buckets.windows(2).all(|w| w[0] < w[1]));
        assert!(b.buckets.iter().all(|&x| x < 4096));
    }
}
