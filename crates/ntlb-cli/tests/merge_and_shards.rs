//! `ntlb merge` and `ntlb sweep --shard`: a folder that is not there is refused by name (no
//! empty table, exit 2), and a shard count is checked wherever it is given, never ignored.

mod common;

use std::process::Command;

use common::repo;

/// `ntlb` with `args` in the repository root, `env` set: (exit code, stderr).
fn ntlb(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ntlb"));
    c.current_dir(repo()).args(args).env_remove("NTLB_SHARD_COUNT");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn merging_a_folder_that_is_not_there_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let nope = tmp.path().join("nope");
    let (rc, err) = ntlb(&["merge", "--out", nope.to_str().unwrap()], &[]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains(&nope.display().to_string()) && err.contains("no such results folder"),
        "{err}"
    );
    assert!(!nope.exists(), "no folder and no empty results.csv");
    let out = tmp.path().join("out");
    let (rc, err) = ntlb(&["merge", "--out", out.to_str().unwrap(), nope.to_str().unwrap()], &[]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains(&nope.display().to_string()), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_shard_count_that_disagrees_or_stands_alone_is_refused() {
    for (args, env, want) in [
        (
            &["--shard", "0/2", "--shard-count", "3"][..],
            &[][..],
            "--shard 0/2 disagrees with --shard-count 3",
        ),
        (
            &["--shard", "1/2"][..],
            &[("NTLB_SHARD_COUNT", "4")][..],
            "--shard 1/2 disagrees with --shard-count 4",
        ),
        (&["--shard-count", "3"][..], &[][..], "without --shard"),
    ] {
        let mut a = vec!["sweep", "configs/demo.toml", "--dry-run"];
        a.extend_from_slice(args);
        let (rc, err) = ntlb(&a, env);
        assert_eq!(rc, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
