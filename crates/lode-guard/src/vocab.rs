//! The word lists the features use. They travel inside the model file, so the JS scorer
//! reads exactly the lists the model was trained with.

use serde::{Deserialize, Serialize};

/// Brand names (as they appear in a registrable domain's first label), bait words and
/// top-level domains often abused by phishing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocab {
    pub brands: Vec<String>,
    pub bait_words: Vec<String>,
    pub risky_tlds: Vec<String>,
}

/// Brands commonly impersonated (banks, mail, shops, delivery, social networks, crypto
/// wallets and exchanges). Each is the first label of the brand's own registrable domain.
pub const BRANDS: [&str; 59] = [
    "paypal",
    "apple",
    "icloud",
    "microsoft",
    "office365",
    "outlook",
    "hotmail",
    "google",
    "gmail",
    "youtube",
    "amazon",
    "netflix",
    "facebook",
    "instagram",
    "whatsapp",
    "linkedin",
    "twitter",
    "dropbox",
    "docusign",
    "adobe",
    "chase",
    "wellsfargo",
    "bankofamerica",
    "citibank",
    "hsbc",
    "barclays",
    "santander",
    "natwest",
    "dhl",
    "fedex",
    "usps",
    "ebay",
    "steamcommunity",
    "steampowered",
    "roblox",
    "discord",
    "telegram",
    "yahoo",
    "alibaba",
    "walmart",
    "spotify",
    "tiktok",
    "wetransfer",
    "sharepoint",
    "onedrive",
    "mastercard",
    "americanexpress",
    "coinbase",
    "binance",
    "metamask",
    "opensea",
    "uniswap",
    "pancakeswap",
    "trustwallet",
    "trezor",
    "myetherwallet",
    "kraken",
    "etherscan",
    "blockchain",
];

/// Words phishing URLs use to create urgency or ask for credentials and keys.
pub const BAIT_WORDS: [&str; 44] = [
    "login",
    "log-in",
    "signin",
    "sign-in",
    "logon",
    "verify",
    "verification",
    "secure",
    "security",
    "account",
    "update",
    "confirm",
    "banking",
    "unlock",
    "suspend",
    "restore",
    "recover",
    "wallet",
    "airdrop",
    "claim",
    "reward",
    "bonus",
    "giveaway",
    "gift",
    "free",
    "connect",
    "validate",
    "authenticate",
    "password",
    "billing",
    "invoice",
    "payment",
    "support",
    "helpdesk",
    "webscr",
    "seed",
    "phrase",
    "mint",
    "whitelist",
    "dapp",
    "sync",
    "migrate",
    "rectify",
    "kyc",
];

/// Top-level domains over-represented in phishing reports.
pub const RISKY_TLDS: [&str; 34] = [
    "xyz", "top", "club", "online", "site", "live", "icu", "buzz", "monster", "rest", "cyou", "tk",
    "ml", "ga", "cf", "gq", "work", "click", "link", "fit", "support", "info", "cc", "pw", "ws",
    "sbs", "cfd", "bond", "quest", "lol", "vip", "today", "network", "finance",
];

impl Vocab {
    /// The lists of feature version 1.
    pub fn default_v1() -> Self {
        let owned = |xs: &[&str]| xs.iter().map(|s| (*s).to_string()).collect();
        Vocab {
            brands: owned(&BRANDS),
            bait_words: owned(&BAIT_WORDS),
            risky_tlds: owned(&RISKY_TLDS),
        }
    }
}
