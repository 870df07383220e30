//! `lode keys` and top-level CLI behaviour, run against the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn lode(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(args)
        .env("LODE_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run lode")
}

fn lode_stdin(home: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(args)
        .env("LODE_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lode");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_role_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let o = lode(dir.path(), &["--help"]);
    assert!(o.status.success());
    for role in [
        "keys", "sandbox", "node", "gateway", "job", "wallet", "ledger", "devnet", "guard",
    ] {
        assert!(
            stdout(&o).contains(role),
            "missing {role} in help: {}",
            stdout(&o)
        );
    }
}

#[test]
fn new_then_show_prints_did_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    let key_s = key.to_str().unwrap();
    let o = lode(
        dir.path(),
        &[
            "keys",
            "new",
            "--out",
            key_s,
            "--payout",
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let did = stdout(&o).lines().next().unwrap().to_string();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let o = lode(dir.path(), &["keys", "show", key_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().next().unwrap(), did);
    // Payout printed in EIP-55 form.
    assert!(
        stdout(&o).contains("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
        "{}",
        stdout(&o)
    );

    let o = lode(dir.path(), &["keys", "show", key_s, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["did"], did.as_str());
    assert_eq!(
        v["payout_address"],
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    );
}

#[test]
fn default_path_lives_in_lode_home_and_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let o = lode(dir.path(), &["keys", "new"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let path = dir.path().join("identity.key");
    let before = std::fs::read(&path).unwrap();
    let o = lode(dir.path(), &["keys", "new"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let o = lode(dir.path(), &["keys", "show"]);
    assert!(o.status.success());
}

#[test]
fn bad_key_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let key_s = key.to_str().unwrap();

    let o = lode(dir.path(), &["keys", "show", key_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));

    assert!(
        lode(dir.path(), &["keys", "new", "--out", key_s])
            .status
            .success()
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = lode(dir.path(), &["keys", "show", key_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));

    std::fs::write(&key, "{ nope").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = lode(dir.path(), &["keys", "show", key_s]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("malformed"), "{}", stderr(&o));
}

#[test]
fn bad_payout_address_is_rejected_by_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    let o = lode(
        dir.path(),
        &[
            "keys",
            "new",
            "--payout",
            "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("checksum"), "{}", stderr(&o));
    assert!(
        !dir.path().join("identity.key").exists(),
        "nothing written on error"
    );
}

#[test]
fn import_reproduces_the_spec_vector_identity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("imported.key");
    // did:key spec vector: seed 0 → z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp
    let o = lode_stdin(
        dir.path(),
        &["keys", "import", "--out", out.to_str().unwrap()],
        &format!("{}\n", "00".repeat(32)),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().next().unwrap(),
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    );

    let o = lode_stdin(
        dir.path(),
        &[
            "keys",
            "import",
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ],
        "zz",
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("64 hex digits"), "{}", stderr(&o));
}

#[test]
fn set_payout_updates_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let key_s = key.to_str().unwrap();
    assert!(
        lode(dir.path(), &["keys", "new", "--out", key_s])
            .status
            .success()
    );
    let did = stdout(&lode(dir.path(), &["keys", "show", key_s]))
        .lines()
        .next()
        .unwrap()
        .to_string();
    let o = lode(
        dir.path(),
        &[
            "keys",
            "set-payout",
            key_s,
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let shown = stdout(&lode(dir.path(), &["keys", "show", key_s]));
    assert!(shown.starts_with(&did));
    assert!(shown.contains("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_closed_stdout_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("k.key");
    assert!(
        lode(
            home.path(),
            &["keys", "new", "--out", key.to_str().unwrap()]
        )
        .status
        .success()
    );
    // The reader is gone before `lode` writes a byte (like `lode keys show K | true`).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_lode"))
        .args(["keys", "show", key.to_str().unwrap()])
        .env("LODE_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    // Ended by SIGPIPE, as `cat` or `grep` would be, not a panic's exit code 101.
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {err}",
        out.status
    );
}
