//! The dataset: labelled URLs built from domain lists (see `sources`) and a seeded
//! generator of phishing-style and benign URLs, split into train and test **by registrable
//! domain** (every URL of a domain is on the same side). Pure: the lists come in as values.
//!
//! File format (TSV, one header line): `label<TAB>source<TAB>url`, label `phishing` or
//! `benign`.

use crate::features::{UrlError, parse_url};
use crate::vocab::{BAIT_WORDS, BRANDS, RISKY_TLDS};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use thiserror::Error;

/// The TSV header line.
pub const HEADER: &str = "label\tsource\turl";

/// One labelled URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub phishing: bool,
    pub source: String,
    pub url: String,
}

/// Why a dataset file cannot be read.
#[derive(Debug, Error)]
pub enum DatasetError {
    #[error("line 1: expected the header {HEADER:?}")]
    Header,
    #[error("line {line}: expected label<TAB>source<TAB>url")]
    Columns { line: usize },
    #[error("line {line}: label {label:?} is neither \"phishing\" nor \"benign\"")]
    Label { line: usize, label: String },
    #[error("line {line}: {source}")]
    Url { line: usize, source: UrlError },
    #[error("the file has no examples")]
    Empty,
}

/// Parses a dataset file; every URL must be scorable.
pub fn parse_tsv(text: &str) -> Result<Vec<Example>, DatasetError> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(DatasetError::Header);
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.is_empty() {
            continue;
        }
        let mut cols = line.splitn(3, '\t');
        let (Some(label), Some(source), Some(url)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(DatasetError::Columns { line: line_no });
        };
        let phishing = match label {
            "phishing" => true,
            "benign" => false,
            other => {
                return Err(DatasetError::Label {
                    line: line_no,
                    label: other.to_string(),
                });
            }
        };
        parse_url(url).map_err(|source| DatasetError::Url {
            line: line_no,
            source,
        })?;
        out.push(Example {
            phishing,
            source: source.to_string(),
            url: url.to_string(),
        });
    }
    if out.is_empty() {
        return Err(DatasetError::Empty);
    }
    Ok(out)
}

/// Writes examples in the file format.
pub fn to_tsv(examples: &[Example]) -> String {
    let mut s = String::with_capacity(examples.len() * 64);
    s.push_str(HEADER);
    s.push('\n');
    for e in examples {
        s.push_str(if e.phishing { "phishing" } else { "benign" });
        s.push('\t');
        s.push_str(&e.source);
        s.push('\t');
        s.push_str(&e.url);
        s.push('\n');
    }
    s
}

/// Hex SHA-256 of bytes (the dataset hash recorded in models).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `domain` falls in the `share` of domains selected by `salt`: a hash, so the
/// choice depends on nothing but the domain name.
pub fn in_share(salt: &str, domain: &str, share: f64) -> bool {
    let h = Sha256::digest(format!("{salt}:{domain}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) as f64 / 18_446_744_073_709_551_616.0) < share
}

/// A list of domains from one source, all with the same label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceList {
    /// Package and file, e.g. `eth-phishing-detect/src/config.json#blacklist`.
    pub name: String,
    pub version: String,
    pub license: String,
    pub phishing: bool,
    pub domains: Vec<String>,
}

/// Dataset settings; `Default` is what the shipped model uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildConfig {
    pub seed: u64,
    /// Share of registrable domains in the test split.
    pub test_share: f64,
    /// At most this many domains from one list (seeded sample).
    pub max_domains_per_list: usize,
    pub generated_phishing: usize,
    pub generated_benign: usize,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            seed: 17,
            test_share: 0.2,
            max_domains_per_list: 10_000,
            generated_phishing: 14000,
            generated_benign: 5000,
        }
    }
}

/// Counts of one source in the built dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCount {
    pub source: String,
    pub phishing: bool,
    pub domains: usize,
    pub urls: usize,
}

/// A built dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub train: Vec<Example>,
    pub test: Vec<Example>,
    pub counts: Vec<SourceCount>,
    /// Domains listed both as phishing and benign (left out).
    pub conflicting_domains: usize,
}

/// Common words for generated names and paths.
const WORDS: [&str; 96] = [
    "alpha", "apex", "atlas", "bay", "bright", "blue", "cedar", "cloud", "coast", "core", "craft",
    "crest", "delta", "digital", "echo", "edge", "field", "first", "flow", "forge", "fox",
    "garden", "global", "gold", "green", "grid", "harbor", "hill", "home", "hub", "iron", "island",
    "jet", "key", "lake", "land", "leaf", "light", "line", "link", "lion", "maple", "market",
    "metro", "mint", "moon", "north", "nova", "oak", "ocean", "orbit", "park", "peak", "pine",
    "pixel", "point", "prime", "pulse", "quest", "rain", "river", "rock", "rose", "sage", "sand",
    "sky", "smart", "snow", "solar", "spark", "spring", "star", "stone", "storm", "sun", "swift",
    "tech", "tide", "tree", "true", "urban", "valley", "vista", "wave", "west", "wild", "wind",
    "wolf", "wood", "works", "news", "shop", "media", "studio", "labs", "group",
];

const COMMON_TLDS: [&str; 10] = [
    "com", "net", "org", "io", "co", "me", "app", "dev", "de", "fr",
];

/// Free hosting and site builders whose sites have their own registrable domain.
const HOSTING: [&str; 10] = [
    "netlify.app",
    "web.app",
    "firebaseapp.com",
    "herokuapp.com",
    "vercel.app",
    "pages.dev",
    "github.io",
    "glitch.me",
    "blogspot.com",
    "azurewebsites.net",
];

const BENIGN_SUBS: [&str; 12] = [
    "www", "mail", "app", "docs", "blog", "shop", "support", "accounts", "m", "en", "api", "help",
];

fn pick<'a, R: Rng>(rng: &mut R, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn hex_token<R: Rng>(rng: &mut R, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

fn word_title<R: Rng>(rng: &mut R) -> String {
    let w = pick(rng, &WORDS);
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// A path and query of the kind ordinary sites serve (sometimes with login pages and
/// brand names in articles, so neither is a giveaway by itself).
fn benign_path<R: Rng>(rng: &mut R) -> String {
    let w = |rng: &mut R| pick(rng, &WORDS).to_string();
    match rng.random_range(0..18) {
        0 | 1 => "/".into(),
        2 => format!("/{}", w(rng)),
        3 => format!("/{}/{}", w(rng), w(rng)),
        4 => format!("/{}/{}-{}-{}", w(rng), w(rng), w(rng), w(rng)),
        5 => format!("/{}/{}", w(rng), rng.random_range(1..99_999)),
        6 => format!("/search?q={}+{}", w(rng), w(rng)),
        7 => format!("/{}.html", w(rng)),
        8 => format!("/en/{}/", w(rng)),
        9 => format!(
            "/blog/{}/{:02}/{}-{}",
            rng.random_range(2015..2027),
            rng.random_range(1..13),
            w(rng),
            w(rng)
        ),
        10 => "/login".into(),
        11 => format!("/account/{}", pick(rng, &["settings", "orders", "profile"])),
        12 => format!("/signin?next=%2F{}", w(rng)),
        13 => format!("/products/{}?ref={}", rng.random_range(100..99_999), w(rng)),
        14 => format!("/wiki/{}_{}", word_title(rng), word_title(rng)),
        15 => format!("/news/{}-{}-{}", pick(rng, &BRANDS), w(rng), w(rng)),
        16 => format!("/index.php?id={}", rng.random_range(1..9999)),
        _ => format!("/user/{}{}", w(rng), rng.random_range(1..999)),
    }
}

/// A path and query of the kind phishing kits serve; a third are ordinary paths.
fn phishing_path<R: Rng>(rng: &mut R) -> String {
    let bait = |rng: &mut R| pick(rng, &BAIT_WORDS).to_string();
    match rng.random_range(0..15) {
        0..=4 => benign_path(rng),
        5 => format!("/{}", bait(rng)),
        6 => format!("/{}/{}", pick(rng, &BRANDS), bait(rng)),
        7 => format!("/{}/{}.php", bait(rng), bait(rng)),
        8 => format!("/{}-{}/index.html", bait(rng), bait(rng)),
        9 => format!(
            "/wp-content/{}/{}/{}.php",
            pick(rng, &WORDS),
            pick(rng, &BRANDS),
            bait(rng)
        ),
        10 => format!(
            "/?{}={}&session={}",
            bait(rng),
            rng.random_range(1..99_999),
            hex_token(rng, 32)
        ),
        11 => format!("/{}/{}", hex_token(rng, 12), bait(rng)),
        12 => format!(
            "/{}?email={}%40{}.com",
            bait(rng),
            pick(rng, &WORDS),
            pick(rng, &WORDS)
        ),
        13 => "/".into(),
        _ => format!("/{}/{}/", bait(rng), pick(rng, &WORDS)),
    }
}

fn seeded_for(seed: u64, key: &str) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(key.as_bytes());
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// URLs for a listed domain: benign domains get ordinary hosts and paths, phishing
/// domains phishing-kit paths and sometimes bait subdomains.
fn urls_for_domain(seed: u64, domain: &str, phishing: bool) -> Vec<String> {
    let mut rng = seeded_for(seed, domain);
    let n = rng.random_range(1..=3);
    (0..n)
        .map(|_| {
            let https = rng.random_bool(if phishing { 0.75 } else { 0.92 });
            let host = if phishing {
                match rng.random_range(0..20) {
                    0..=11 => domain.to_string(),
                    12 | 13 => format!("www.{domain}"),
                    14..=16 => format!("{}.{domain}", pick(&mut rng, &BAIT_WORDS)),
                    17 => format!(
                        "{}.{}.{domain}",
                        pick(&mut rng, &BRANDS),
                        pick(&mut rng, &BAIT_WORDS)
                    ),
                    _ => format!("{}.{domain}", pick(&mut rng, &WORDS)),
                }
            } else {
                match rng.random_range(0..10) {
                    0..=3 => domain.to_string(),
                    4..=7 => format!("www.{domain}"),
                    _ => format!("{}.{domain}", pick(&mut rng, &BENIGN_SUBS)),
                }
            };
            let path = if phishing {
                phishing_path(&mut rng)
            } else {
                benign_path(&mut rng)
            };
            format!("{}://{host}{path}", if https { "https" } else { "http" })
        })
        .collect()
}

/// A brand with one typo: deletion, insertion, swap, doubled letter or look-alike digit.
fn typo<R: Rng>(rng: &mut R, brand: &str) -> String {
    let b: Vec<char> = brand.chars().collect();
    let i = rng.random_range(0..b.len());
    let mut out = b.clone();
    match rng.random_range(0..5) {
        0 if b.len() > 4 => {
            out.remove(i);
        }
        1 => out.insert(i, char::from(b"aeiounrst"[rng.random_range(0..9)])),
        2 if i + 1 < b.len() => out.swap(i, i + 1),
        3 => out.insert(i, b[i]),
        _ => {
            let look = |c: char| match c {
                'o' => Some('0'),
                'l' | 'i' => Some('1'),
                'e' => Some('3'),
                'a' => Some('4'),
                's' => Some('5'),
                'm' => None,
                _ => None,
            };
            if let Some((j, d)) = b
                .iter()
                .enumerate()
                .find_map(|(j, &c)| look(c).map(|d| (j, d)))
            {
                out[j] = d;
            } else {
                out.insert(i, b[i]);
            }
        }
    }
    out.into_iter().collect()
}

/// Replaces one Latin letter with a Cyrillic look-alike (becomes punycode when parsed).
fn homoglyph<R: Rng>(rng: &mut R, brand: &str) -> String {
    let swaps: Vec<usize> = brand
        .char_indices()
        .filter(|(_, c)| matches!(c, 'a' | 'e' | 'o' | 'p' | 'c'))
        .map(|(i, _)| i)
        .collect();
    if swaps.is_empty() {
        return format!("{brand}-{}", pick(rng, &BAIT_WORDS));
    }
    let at = swaps[rng.random_range(0..swaps.len())];
    brand
        .char_indices()
        .map(|(i, c)| {
            if i != at {
                c
            } else {
                match c {
                    'a' => 'а',
                    'e' => 'е',
                    'o' => 'о',
                    'p' => 'р',
                    _ => 'с',
                }
            }
        })
        .collect()
}

fn any_tld<R: Rng>(rng: &mut R) -> &'static str {
    if rng.random_bool(0.5) {
        pick(rng, &RISKY_TLDS)
    } else {
        pick(rng, &COMMON_TLDS)
    }
}

/// One generated phishing-style URL (brand in a subdomain or path, combosquats,
/// typosquats, homoglyphs, free hosting, IP literals, userinfo tricks, random hosts).
fn generated_phishing<R: Rng>(rng: &mut R) -> String {
    let brand = pick(rng, &BRANDS);
    let bait = pick(rng, &BAIT_WORDS);
    let word = pick(rng, &WORDS);
    let scheme = if rng.random_bool(0.7) {
        "https"
    } else {
        "http"
    };
    let path = phishing_path(rng);
    let host = match rng.random_range(0..9) {
        0 => format!("{brand}.com.{bait}-{word}.{}", any_tld(rng)),
        1 => format!(
            "{bait}.{brand}.{word}{}.{}",
            pick(rng, &WORDS),
            any_tld(rng)
        ),
        2 => {
            let (a, b) = if rng.random_bool(0.5) {
                (brand, bait)
            } else {
                (bait, brand)
            };
            let sep = if rng.random_bool(0.6) { "-" } else { "" };
            format!("{a}{sep}{b}.{}", any_tld(rng))
        }
        3 => format!("{}.{}", typo(rng, brand), any_tld(rng)),
        4 => format!("{}.com", homoglyph(rng, brand)),
        5 => format!("{brand}-{bait}-{word}.{}", pick(rng, &HOSTING)),
        6 => {
            let host = format!("{}{}.{}", word, pick(rng, &WORDS), pick(rng, &HOSTING));
            return format!("{scheme}://{host}/{brand}/{bait}");
        }
        7 => {
            let ip = format!(
                "{}.{}.{}.{}",
                rng.random_range(11..223),
                rng.random_range(0..256),
                rng.random_range(0..256),
                rng.random_range(1..255)
            );
            let port = if rng.random_bool(0.3) { ":8080" } else { "" };
            return format!("http://{ip}{port}/{brand}/{bait}.php");
        }
        _ => {
            if rng.random_bool(0.5) {
                let host = format!("{word}-{}.{}", pick(rng, &WORDS), any_tld(rng));
                return format!("{scheme}://{brand}.com@{host}/{bait}");
            }
            format!(
                "{}.{word}-{}.{}",
                hex_token(rng, 10),
                pick(rng, &WORDS),
                pick(rng, &RISKY_TLDS)
            )
        }
    };
    format!("{scheme}://{host}{path}")
}

/// One generated benign URL of the kinds the lists lack: small sites on hosting
/// platforms, router pages on private IPs, explicit ports, internationalized names, and
/// brands' own sign-in pages.
fn generated_benign<R: Rng>(rng: &mut R) -> String {
    let word = pick(rng, &WORDS);
    let word2 = pick(rng, &WORDS);
    match rng.random_range(0..10) {
        0..=3 => format!(
            "https://{word}-{word2}.{}{}",
            pick(rng, &HOSTING),
            benign_path(rng)
        ),
        4 => format!(
            "http://192.168.{}.{}/{}",
            rng.random_range(0..3),
            rng.random_range(1..255),
            pick(rng, &["", "admin", "login.html", "status"])
        ),
        5 => format!(
            "https://{word}.{word2}.{}:{}{}",
            pick(rng, &COMMON_TLDS),
            pick(rng, &["8443", "8080", "3000"]),
            benign_path(rng)
        ),
        6 => format!(
            "https://{}.{}{}",
            pick(
                rng,
                &[
                    "münchen",
                    "bücher",
                    "café",
                    "straße",
                    "日本語",
                    "пример",
                    "españa"
                ]
            ),
            pick(rng, &["de", "fr", "jp", "com", "es"]),
            benign_path(rng)
        ),
        _ => {
            let brand = pick(rng, &BRANDS);
            let sub = pick(
                rng,
                &["www", "accounts", "login", "secure", "support", "my"],
            );
            format!("https://{sub}.{brand}.com{}", benign_path(rng))
        }
    }
}

fn normalize_domain(d: &str) -> Option<String> {
    let d = d.trim().trim_start_matches("*.").to_ascii_lowercase();
    if d.is_empty() || d.contains(['/', ' ', '\t', ':', '@']) {
        return None;
    }
    let p = parse_url(&format!("https://{d}/")).ok()?;
    Some(p.host)
}

/// Builds the dataset from the lists, extra labelled URLs (network reports, flagged false
/// positives) and the generator.
pub fn build(lists: &[SourceList], extra: &[Example], cfg: &BuildConfig) -> Built {
    // Normalize, then drop domains that appear with both labels.
    let mut phishing_all = BTreeSet::new();
    let mut benign_all = BTreeSet::new();
    let normalized: Vec<BTreeSet<String>> = lists
        .iter()
        .map(|l| {
            l.domains
                .iter()
                .filter_map(|d| normalize_domain(d))
                .collect()
        })
        .collect();
    for (l, set) in lists.iter().zip(&normalized) {
        if l.phishing {
            phishing_all.extend(set.iter().cloned());
        } else {
            benign_all.extend(set.iter().cloned());
        }
    }
    let conflicting: BTreeSet<String> = phishing_all.intersection(&benign_all).cloned().collect();

    let mut seen_urls = BTreeSet::new();
    let mut rows: Vec<Example> = Vec::new();
    let mut counts = Vec::new();
    let mut push = |rows: &mut Vec<Example>, phishing: bool, source: &str, url: &str| -> bool {
        match parse_url(url) {
            Ok(p) if seen_urls.insert(p.href.clone()) => {
                rows.push(Example {
                    phishing,
                    source: source.to_string(),
                    url: p.href,
                });
                true
            }
            _ => false,
        }
    };
    for (l, set) in lists.iter().zip(&normalized) {
        let mut domains: Vec<&String> = set.iter().filter(|d| !conflicting.contains(*d)).collect();
        if domains.len() > cfg.max_domains_per_list {
            let mut rng = seeded_for(cfg.seed, &l.name);
            for i in (1..domains.len()).rev() {
                let j = rng.random_range(0..=i);
                domains.swap(i, j);
            }
            domains.truncate(cfg.max_domains_per_list);
            domains.sort();
        }
        let mut urls = 0;
        for d in &domains {
            for u in urls_for_domain(cfg.seed, d, l.phishing) {
                urls += usize::from(push(&mut rows, l.phishing, &l.name, &u));
            }
        }
        counts.push(SourceCount {
            source: l.name.clone(),
            phishing: l.phishing,
            domains: domains.len(),
            urls,
        });
    }
    let mut rng = seeded_for(cfg.seed, "generated");
    for (phishing, n, name) in [
        (true, cfg.generated_phishing, "generated-phishing"),
        (false, cfg.generated_benign, "generated-benign"),
    ] {
        let mut urls = 0;
        let mut attempts = 0;
        while urls < n && attempts < n * 4 {
            attempts += 1;
            let u = if phishing {
                generated_phishing(&mut rng)
            } else {
                generated_benign(&mut rng)
            };
            urls += usize::from(push(&mut rows, phishing, name, &u));
        }
        counts.push(SourceCount {
            source: name.to_string(),
            phishing,
            domains: 0,
            urls,
        });
    }
    let mut extra_urls = 0;
    for e in extra {
        extra_urls += usize::from(push(&mut rows, e.phishing, &e.source, &e.url));
    }
    if !extra.is_empty() {
        counts.push(SourceCount {
            source: "extra".into(),
            phishing: extra.iter().any(|e| e.phishing),
            domains: 0,
            urls: extra_urls,
        });
    }

    let (mut train, mut test) = (Vec::new(), Vec::new());
    for r in rows {
        let reg = parse_url(&r.url).map(|p| p.registrable).unwrap_or_default();
        if in_share("lode-guard-test", &reg, cfg.test_share) {
            test.push(r);
        } else {
            train.push(r);
        }
    }
    Built {
        train,
        test,
        counts,
        conflicting_domains: conflicting.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> Vec<SourceList> {
        let mk = |name: &str, phishing: bool, domains: &[&str]| SourceList {
            name: name.into(),
            version: "1".into(),
            license: "MIT".into(),
            phishing,
            domains: domains.iter().map(|s| s.to_string()).collect(),
        };
        vec![
            mk(
                "bad",
                true,
                &[
                    "evil-wallet.xyz",
                    "both.com",
                    "*.claim-nft.top",
                    "bad domain",
                    "x.y.z.evil-wallet.xyz",
                ],
            ),
            mk(
                "good",
                false,
                &["example.com", "Both.com", "wikipedia.org", "a.b.co.uk"],
            ),
        ]
    }

    #[test]
    fn build_is_deterministic_and_split_by_domain() {
        let cfg = BuildConfig {
            generated_phishing: 300,
            generated_benign: 100,
            ..BuildConfig::default()
        };
        let a = build(&lists(), &[], &cfg);
        let b = build(&lists(), &[], &cfg);
        assert_eq!(a, b);
        assert_eq!(a.conflicting_domains, 1);
        let all: Vec<&Example> = a.train.iter().chain(&a.test).collect();
        assert!(all.iter().all(|e| !e.url.contains("both.com")));
        assert!(all.iter().all(|e| !e.url.contains("bad domain")));
        assert!(
            all.iter()
                .any(|e| e.url.contains("claim-nft.top") && e.phishing)
        );
        // No registrable domain on both sides of the split.
        let regs = |xs: &[Example]| -> BTreeSet<String> {
            xs.iter()
                .map(|e| parse_url(&e.url).unwrap().registrable)
                .collect()
        };
        assert!(regs(&a.train).is_disjoint(&regs(&a.test)));
        assert!(!a.test.is_empty());
        let gen_p = a
            .counts
            .iter()
            .find(|c| c.source == "generated-phishing")
            .unwrap();
        assert_eq!(gen_p.urls, 300);
        // Extra labelled URLs (network reports, flagged false positives) are kept.
        let extra = vec![Example {
            phishing: true,
            source: "reports".into(),
            url: "https://reported-scam.example/claim".into(),
        }];
        let d = build(&lists(), &extra, &cfg);
        assert!(
            d.train
                .iter()
                .chain(&d.test)
                .any(|e| e.source == "reports" && e.phishing)
        );
        // A different seed gives different generated URLs.
        let c = build(&lists(), &[], &BuildConfig { seed: 18, ..cfg });
        assert_ne!(a.train, c.train);
    }

    #[test]
    fn tsv_round_trip_and_errors() {
        let ex = vec![
            Example {
                phishing: true,
                source: "s".into(),
                url: "http://a.xyz/login".into(),
            },
            Example {
                phishing: false,
                source: "t".into(),
                url: "https://b.com/".into(),
            },
        ];
        let text = to_tsv(&ex);
        assert_eq!(parse_tsv(&text).unwrap(), ex);
        assert!(matches!(parse_tsv("url\n"), Err(DatasetError::Header)));
        assert!(matches!(parse_tsv(HEADER), Err(DatasetError::Empty)));
        let bad = format!("{HEADER}\nphishing\tonly-two\n");
        assert!(matches!(
            parse_tsv(&bad),
            Err(DatasetError::Columns { line: 2 })
        ));
        let bad = format!("{HEADER}\nmaybe\ts\thttps://a.com/\n");
        assert!(matches!(
            parse_tsv(&bad),
            Err(DatasetError::Label { line: 2, .. })
        ));
        let bad = format!("{HEADER}\nbenign\ts\thttps://a.com/\nbenign\ts\tftp://a.com/\n");
        assert!(matches!(
            parse_tsv(&bad),
            Err(DatasetError::Url { line: 3, .. })
        ));
    }

    #[test]
    fn share_is_about_right() {
        let n = (0..10_000)
            .filter(|i| in_share("salt", &format!("d{i}.com"), 0.2))
            .count();
        assert!((1800..2200).contains(&n), "{n}");
        assert!(!in_share("salt", "x.com", 0.0));
    }
}
