//! Which part of a sweep this process runs: `--shard i/n`, or `--shard auto` from the
//! scheduler's environment (a Slurm job array, a Kubernetes Indexed Job).
//!
//! Shards take contiguous blocks of the plan. The plan is ordered by model, so a shard touches
//! as few checkpoints as possible; the shared feature cache does the rest.

use std::ops::Range;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Fixed(usize, usize),
    Auto,
}

/// `i/n` (0-based) or `auto`.
pub fn parse_shard_arg(s: &str) -> Result<ShardArg> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(ShardArg::Auto);
    }
    let (i, n) = s
        .split_once('/')
        .with_context(|| format!("shard `{s}`: expected i/n (0-based) or auto"))?;
    let i: usize = i.trim().parse().with_context(|| format!("shard `{s}`: `{i}` is not a number"))?;
    let n: usize = n.trim().parse().with_context(|| format!("shard `{s}`: `{n}` is not a number"))?;
    if n == 0 || i >= n {
        bail!("shard {s}: need 0 <= i < n");
    }
    Ok(ShardArg::Fixed(i, n))
}

fn num(get: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>> {
    match get(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .with_context(|| format!("{name}={v:?} is not a non-negative integer")),
    }
}

/// The shard of this task from the scheduler's variables (`get` reads the environment;
/// tests pass a map). `count` is `--shard-count`, needed by Kubernetes, checked against Slurm.
///
/// Slurm numbers array tasks from wherever `--array` starts (often 1) and may step:
/// index = (ID − MIN) / STEP, count = COUNT. A list such as `--array=1,5,9` has gaps that no
/// index formula can close: it is refused rather than guessed.
pub fn shard_from_env(get: &dyn Fn(&str) -> Option<String>, count: Option<usize>) -> Result<(usize, usize)> {
    if let Some(id) = num(get, "SLURM_ARRAY_TASK_ID")? {
        let min = num(get, "SLURM_ARRAY_TASK_MIN")?.context("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_MIN is not")?;
        let n = num(get, "SLURM_ARRAY_TASK_COUNT")?.context("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
        let step = num(get, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let max = num(get, "SLURM_ARRAY_TASK_MAX")?;
        if id < min || (id - min) % step != 0 {
            bail!("SLURM_ARRAY_TASK_ID={id} is not MIN={min} plus a multiple of STEP={step}");
        }
        if let Some(max) = max {
            if (max - min) / step + 1 != n {
                bail!(
                    "the Slurm array is not a range (MIN={min} MAX={max} STEP={step} but COUNT={n}): submit a range such as --array=0-{}",
                    n.saturating_sub(1)
                );
            }
        }
        let i = (id - min) / step;
        if n == 0 || i >= n {
            bail!("Slurm array task {id}: index {i} is outside COUNT={n}");
        }
        if let Some(c) = count {
            if c != n {
                bail!("--shard-count {c} disagrees with SLURM_ARRAY_TASK_COUNT={n}");
            }
        }
        return Ok((i, n));
    }
    if let Some(i) = num(get, "JOB_COMPLETION_INDEX")? {
        let n = count.context("JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job): pass --shard-count N (the Job's completions)")?;
        if n == 0 || i >= n {
            bail!("JOB_COMPLETION_INDEX={i} is outside --shard-count {n}");
        }
        return Ok((i, n));
    }
    bail!("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set")
}

/// Resolve a `--shard` argument (None: the whole sweep). `count` (`--shard-count` or
/// `NTLB_SHARD_COUNT`) is checked wherever it is given, as against Slurm's count: with `i/n`
/// it must be `n`, and without `--shard` it is refused (it would run the whole sweep).
pub fn resolve(arg: Option<ShardArg>, count: Option<usize>) -> Result<Option<(usize, usize)>> {
    match (arg, count) {
        (None, Some(c)) => bail!("--shard-count {c} (or NTLB_SHARD_COUNT) without --shard: pass --shard i/{c} or --shard auto"),
        (None, None) => Ok(None),
        (Some(ShardArg::Fixed(i, n)), Some(c)) if c != n => {
            bail!("--shard {i}/{n} disagrees with --shard-count {c} (or NTLB_SHARD_COUNT): give one count")
        }
        (Some(ShardArg::Fixed(i, n)), _) => Ok(Some((i, n))),
        (Some(ShardArg::Auto), _) => shard_from_env(&|k| std::env::var(k).ok(), count).map(Some),
    }
}

/// The plan positions of shard `i` of `n`: contiguous, sizes differing by at most one.
pub fn shard_range(n_jobs: usize, (i, n): (usize, usize)) -> Range<usize> {
    (i * n_jobs / n)..((i + 1) * n_jobs / n)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    fn slurm(id: usize, min: usize, max: usize, count: usize, step: Option<usize>) -> impl Fn(&str) -> Option<String> {
        let (id, min, max, count) = (id.to_string(), min.to_string(), max.to_string(), count.to_string());
        let mut v = vec![
            ("SLURM_ARRAY_TASK_ID", id.as_str()),
            ("SLURM_ARRAY_TASK_MIN", min.as_str()),
            ("SLURM_ARRAY_TASK_MAX", max.as_str()),
            ("SLURM_ARRAY_TASK_COUNT", count.as_str()),
        ];
        let s = step.map(|s| s.to_string());
        if let Some(s) = &s {
            v.push(("SLURM_ARRAY_TASK_STEP", s.as_str()));
        }
        env(&v)
    }

    #[test]
    fn slurm_arrays_starting_at_one_cover_every_shard_once() {
        // --array=1-28: tasks 1..=28 are shards 0..=27.
        let got: Vec<(usize, usize)> = (1..=28)
            .map(|id| shard_from_env(&slurm(id, 1, 28, 28, Some(1)), None).unwrap())
            .collect();
        assert_eq!(got, (0..28).map(|i| (i, 28)).collect::<Vec<_>>());
        // --array=0-2 and a stepped --array=10-14:2 (tasks 10, 12, 14).
        assert_eq!(shard_from_env(&slurm(0, 0, 2, 3, None), None).unwrap(), (0, 3));
        assert_eq!(shard_from_env(&slurm(14, 10, 14, 3, Some(2)), None).unwrap(), (2, 3));
        assert_eq!(shard_from_env(&slurm(12, 10, 14, 3, Some(2)), Some(3)).unwrap(), (1, 3));
    }

    #[test]
    fn slurm_lists_and_contradictions_are_refused() {
        // --array=1,5,9: MIN 1, MAX 9, COUNT 3.
        let e = shard_from_env(&slurm(5, 1, 9, 3, Some(1)), None).unwrap_err().to_string();
        assert!(e.contains("not a range"), "{e}");
        let e = shard_from_env(&slurm(2, 0, 2, 3, None), Some(4)).unwrap_err().to_string();
        assert!(e.contains("--shard-count 4"), "{e}");
        let e = shard_from_env(&env(&[("SLURM_ARRAY_TASK_ID", "3")]), None).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_MIN"), "{e}");
        let e = shard_from_env(&env(&[("SLURM_ARRAY_TASK_ID", "x")]), None).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID=\"x\""), "{e}");
    }

    #[test]
    fn kubernetes_needs_a_count_and_nothing_set_is_an_error() {
        let k = env(&[("JOB_COMPLETION_INDEX", "4")]);
        assert_eq!(shard_from_env(&k, Some(5)).unwrap(), (4, 5));
        assert!(shard_from_env(&k, None).unwrap_err().to_string().contains("--shard-count"));
        assert!(shard_from_env(&k, Some(4)).unwrap_err().to_string().contains("outside"));
        let e = shard_from_env(&env(&[]), Some(3)).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID") && e.contains("JOB_COMPLETION_INDEX"), "{e}");
    }

    #[test]
    fn shard_ranges_partition_the_plan() {
        for jobs in [0, 1, 7, 28, 29] {
            for n in 1..=9 {
                let mut seen = Vec::new();
                for i in 0..n {
                    let r = shard_range(jobs, (i, n));
                    assert!(r.len() == jobs / n || r.len() == jobs / n + 1, "jobs {jobs} n {n} i {i}: {r:?}");
                    seen.extend(r);
                }
                assert_eq!(seen, (0..jobs).collect::<Vec<_>>());
            }
        }
        assert_eq!(parse_shard_arg("auto").unwrap(), ShardArg::Auto);
        assert_eq!(parse_shard_arg("2/3").unwrap(), ShardArg::Fixed(2, 3));
        assert!(parse_shard_arg("3/3").is_err() && parse_shard_arg("x").is_err());
    }

    /// A count beside `--shard` is checked, never ignored: it must agree with `i/n`, and alone
    /// it is refused.
    #[test]
    fn a_shard_count_is_checked_wherever_it_is_given() {
        assert_eq!(resolve(Some(ShardArg::Fixed(1, 4)), Some(4)).unwrap(), Some((1, 4)));
        assert_eq!(resolve(Some(ShardArg::Fixed(1, 4)), None).unwrap(), Some((1, 4)));
        let e = resolve(Some(ShardArg::Fixed(1, 4)), Some(3)).unwrap_err().to_string();
        assert!(e.contains("--shard 1/4") && e.contains("--shard-count 3"), "{e}");
        let e = resolve(None, Some(3)).unwrap_err().to_string();
        assert!(e.contains("--shard-count 3") && e.contains("without --shard"), "{e}");
        assert_eq!(resolve(None, None).unwrap(), None);
    }
}
