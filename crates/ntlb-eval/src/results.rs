//! Result records: one JSON per finished job (`runs/<key>.json`), and the sweep's tables
//! (`results.parquet` through polars, `results.csv`) rebuilt from them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::method::Method;
use crate::relevance_maps::RelevanceMap;
use crate::sweep::Job;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub sweep: String,
    pub run_key: String,
    pub model: String,
    /// What produced the row, written as `zero-shot`, `zero-shot-ensemble-<name>`, `coop`,
    /// `coop-init` (CoOp's with ` name_score=<mean|min>` after it).
    pub method: Method,
    pub template: Option<String>,
    pub lambda: Option<f64>,
    pub seed: Option<u64>,
    /// The dataset entry's name (default: its kind): what the report groups by.
    pub dataset: String,
    pub top1: f64,
    pub top5: f64,
    pub mean_per_class: f64,
    pub n_images: usize,
    pub n_failed: usize,
    /// CoOp rows: the paper's class-name score (the max over the name, whatever aggregation the
    /// run trained with, so that runs compare) of the true class, mean over held-out ImageNet
    /// val images (the same value on every dataset row of a run; `coop-init`: before training).
    #[serde(default)]
    pub name_score: Option<f64>,
    /// The dataset's kind (`imagenet`, `imagenet-v2`, ...). Rows written before dataset
    /// entries had names hold none: their `dataset` is the kind ([`ResultRow::fill_defaults`]).
    #[serde(default)]
    pub dataset_kind: String,
    /// CoOp rows: the training images per class. Rows written before the column existed were
    /// 1-shot ([`ResultRow::fill_defaults`]); zero-shot rows hold none.
    #[serde(default)]
    pub shots: Option<usize>,
    /// CoOp rows: the training dataset, `imagenet` (the set at `coop.train_root`) or the name
    /// of the `[[datasets]]` entry trained on. Rows written before the column read `imagenet`.
    #[serde(default)]
    pub train_dataset: Option<String>,
}

/// What names a row across runs and tables: rows are compared (`ntlb regress`) and merged by
/// it; a new axis of the job model is one field here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowIdentity {
    pub model: String,
    pub method: String,
    pub template: Option<String>,
    pub lambda: Option<String>,
    pub seed: Option<u64>,
    pub dataset: String,
    pub shots: Option<usize>,
    pub train_dataset: Option<String>,
}

impl ResultRow {
    /// Rows read from files written before a column existed: the kind is their `dataset`; a
    /// CoOp row trained 1-shot on ImageNet, the only job there was.
    pub fn fill_defaults(&mut self) {
        if self.dataset_kind.is_empty() {
            self.dataset_kind = self.dataset.clone();
        }
        if !self.method.is_zero_shot() {
            self.shots.get_or_insert(1);
            self.train_dataset.get_or_insert_with(|| crate::sweep::IMAGENET_TRAIN.to_string());
        }
    }

    pub fn identity(&self) -> RowIdentity {
        RowIdentity {
            model: self.model.clone(),
            method: self.method.to_string(),
            template: self.template.clone(),
            lambda: self.lambda.map(|l| format!("{l}")),
            seed: self.seed,
            dataset: self.dataset.clone(),
            shots: self.shots,
            train_dataset: self.train_dataset.clone(),
        }
    }

    /// The numbers and what names them, apart from the sweep's name (a renamed sweep reuses
    /// the records of the one it was).
    pub fn same_result(&self, other: &ResultRow) -> bool {
        ResultRow {
            sweep: other.sweep.clone(),
            ..self.clone()
        } == *other
    }
}

#[cfg(test)]
impl ResultRow {
    /// A row for unit tests: the fields aggregations and checks read, the others fixed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_test(
        method: &str,
        lambda: Option<f64>,
        seed: Option<u64>,
        dataset: &str,
        top1: f64,
        top5: f64,
        name_score: Option<f64>,
    ) -> ResultRow {
        ResultRow {
            sweep: "s".into(),
            run_key: "k".into(),
            model: "m".into(),
            method: Method::parse(method).expect("a method's string"),
            template: None,
            lambda,
            seed,
            dataset: dataset.into(),
            top1,
            top5,
            mean_per_class: 0.0,
            n_images: 1,
            n_failed: 0,
            name_score,
            dataset_kind: dataset.into(),
            shots: (!method.starts_with("zero-shot")).then_some(1),
            train_dataset: (!method.starts_with("zero-shot")).then(|| "imagenet".into()),
        }
    }
}

/// Means over the steps of one training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    pub epoch: usize,
    pub loss: f64,
    pub ce: f64,
    pub expl: f64,
    /// Training-batch top-1 (%).
    pub acc: f64,
}

/// Per-epoch means of a trainer's per-step log.
pub fn epoch_curve(steps: &[ntlb_prompt::train::LossPoint]) -> Vec<EpochPoint> {
    steps
        .chunk_by(|a, b| a.epoch == b.epoch)
        .map(|g| {
            let mean = |f: fn(&ntlb_prompt::train::LossPoint) -> f64| g.iter().map(f).sum::<f64>() / g.len() as f64;
            EpochPoint {
                epoch: g[0].epoch,
                loss: mean(|p| p.loss),
                ce: mean(|p| p.ce),
                expl: mean(|p| p.expl),
                acc: mean(|p| p.acc),
            }
        })
        .collect()
}

/// The manifest of one finished job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub key: String,
    pub job: Job,
    pub sweep: String,
    pub git_commit: Option<String>,
    pub checkpoint_sha256: String,
    /// What the checkpoint is by name (`ntlb_clip::names::identify`): a clip.load file whose
    /// SHA-256 is the one clip.load checks, or an open_clip pair's weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_name: Option<String>,
    pub seconds: f64,
    pub rows: Vec<ResultRow>,
    pub failed_images: Vec<(PathBuf, String)>,
    pub relevance: Option<Vec<RelevanceMap>>,
    /// CoOp: the training curve, per epoch.
    #[serde(default)]
    pub curve: Option<Vec<EpochPoint>>,
    /// Preprocessing of the features (the feature-cache key's `preprocessing` and `convert_order`).
    #[serde(default)]
    pub preprocessing: Vec<String>,
    /// The model's activations and normalisation, and where each was read.
    #[serde(default)]
    pub model_numerics: Option<ntlb_clip::checkpoint::ModelNumerics>,
    /// Dataset -> its class folders that hold no image, evaluated without them because its
    /// entry says `allow_empty_classes = true` (absent when none).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub empty_classes: std::collections::BTreeMap<String, Vec<String>>,
    /// The text its key hashes ([`crate::identity::SweepIdentity::content`]): the checkpoint
    /// digest and numerics, the settings, every set by content. Absent in records written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The upstream CoOp pickle (file as found here, SHA-256) a CoOp job's few-shot split was
    /// read from; absent for a fresh draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_draw: Option<ntlb_data::split::CachedFrom>,
}

impl RunRecord {
    /// Write the record atomically, sealed with the SHA-256 of its text
    /// ([`ntlb_core::sealed`]): every reader checks it.
    pub fn write(&self, path: &Path) -> Result<()> {
        ntlb_core::sealed::write_sealed_json(path, self)
    }

    /// Read a record and check its digest, that it is the record of the job its file is
    /// named after (`<key>.json`) and, where it carries the content its key hashes, that the
    /// key is that content's and the record was computed from it; errors name the file.
    pub fn read(path: &Path) -> Result<RunRecord> {
        let mut r: RunRecord = ntlb_core::sealed::read_sealed_json(path)?;
        match path.file_stem().and_then(|s| s.to_str()) {
            Some(stem) if stem == r.key => {}
            _ => bail!("{}: holds the record of job {}", path.display(), r.key),
        }
        if let Some(c) = &r.content {
            let hashed = crate::identity::SweepIdentity::key_of(c);
            if hashed != r.key {
                bail!("{}: its content hashes to key {hashed}, not {}", path.display(), r.key);
            }
            r.check_computed_from(c).with_context(|| path.display().to_string())?;
        }
        r.rows.iter_mut().for_each(ResultRow::fill_defaults);
        Ok(r)
    }

    /// Whether the record may stand for the job whose key hashes `expected`
    /// ([`crate::identity::SweepIdentity::content`]): the content it carries is `expected`, and
    /// what it says it was computed from (model, checkpoint digest, numerics, λ and seed) is
    /// what `expected` names. A record written before records carried their content is held
    /// to the second test alone.
    pub fn check_content(&self, expected: &str) -> Result<()> {
        if let Some(c) = &self.content {
            if c != expected {
                bail!(
                    "computed from other inputs than this job's key hashes ({} differ)",
                    differing_keys(c, expected)
                );
            }
        }
        self.check_computed_from(expected)
    }

    fn check_computed_from(&self, content: &str) -> Result<()> {
        let v: serde_json::Value = serde_json::from_str(content).context("the content of a job key is not JSON")?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
        let model = field("model");
        let m = &self.job.model().name;
        if m != model {
            bail!("a record of model `{m}` where the key is of model `{model}`");
        }
        if let Some(r) = self.rows.iter().find(|r| &r.model != m) {
            bail!("a row of model `{}` in a record of model `{m}`", r.model);
        }
        // The key's checkpoint id is the weights' digest, then `+` and the tokenizer's when one is named.
        let checkpoint = field("checkpoint").split('+').next().unwrap_or_default();
        if self.checkpoint_sha256 != checkpoint {
            bail!(
                "computed from checkpoint {} of model `{m}`, its key hashes checkpoint {checkpoint}",
                self.checkpoint_sha256
            );
        }
        if let Some(n) = &self.model_numerics {
            if n.identity() != field("model_numerics") {
                bail!(
                    "computed with numerics {} of model `{m}`, its key hashes {}",
                    n.identity(),
                    field("model_numerics")
                );
            }
        }
        let job = v.get("job").unwrap_or(&serde_json::Value::Null);
        let method = job.get("method").and_then(|x| x.as_str()).unwrap_or_default();
        match &self.job {
            Job::ZeroShot { .. } if method == "zero-shot" => {}
            Job::Coop { lambda, seed, .. }
                if method == "coop"
                    && job.get("lambda").and_then(|x| x.as_f64()) == Some(*lambda)
                    && job.get("seed").and_then(|x| x.as_u64()) == Some(*seed) => {}
            other => bail!("a record of job `{}` where the key is of another job ({job})", other.label()),
        }
        Ok(())
    }
}

/// The top-level fields of two JSON objects that differ (or the whole text, where either is
/// not an object).
fn differing_keys(a: &str, b: &str) -> String {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (serde_json::from_str(a), serde_json::from_str(b)) else {
        return "the content".into();
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The record files of a results folder: (key, path) of every `runs/*.json`, sorted. An
/// entry the listing cannot read is an error, not a record left out.
pub fn record_files(results: &Path) -> Result<Vec<(String, PathBuf)>> {
    let dir = results.join("runs");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list", dir.display())),
    };
    let mut files = Vec::new();
    for e in rd {
        let p = e.with_context(|| format!("{}: cannot list an entry", dir.display()))?.path();
        if p.extension().is_some_and(|e| e == "json") {
            let key = p.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            files.push((key, p));
        }
    }
    files.sort();
    Ok(files)
}

/// Every run record of a results folder, each checked ([`RunRecord::read`]): a damaged one is
/// an error naming it (`ntlb sweep` moves it aside and runs its job again).
pub fn read_runs(results: &Path) -> Result<Vec<RunRecord>> {
    record_files(results)?.iter().map(|(_, p)| RunRecord::read(p)).collect()
}

/// The records of the jobs `keys` only (records of other sweeps or edited plans are not read).
pub fn read_runs_of(results: &Path, keys: &std::collections::BTreeSet<String>) -> Result<Vec<RunRecord>> {
    record_files(results)?
        .iter()
        .filter(|(k, _)| keys.contains(k))
        .map(|(_, p)| RunRecord::read(p))
        .collect()
}

pub fn rows_of(runs: &[RunRecord]) -> Vec<ResultRow> {
    runs.iter().flat_map(|r| r.rows.clone()).collect()
}

/// The rows of a results folder's table: its runs' rows, named after the sweep of its plan. A
/// renamed sweep (say an `extends` that sets another `name`) reuses the records of its old
/// name, whose rows say that name; the table is the plan's sweep.
pub fn table_rows(results: &Path, runs: &[RunRecord]) -> Result<Vec<ResultRow>> {
    let mut rows = rows_of(runs);
    if let Some(plan) = Plan::read(results)? {
        for r in &mut rows {
            r.sweep.clone_from(&plan.sweep);
        }
    }
    Ok(rows)
}

fn frame(rows: &[ResultRow]) -> PolarsResult<DataFrame> {
    let s = |f: fn(&ResultRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("sweep".into(), s(|r| r.sweep.clone())),
            Column::new("run_key".into(), s(|r| r.run_key.clone())),
            Column::new("model".into(), s(|r| r.model.clone())),
            Column::new("method".into(), s(|r| r.method.to_string())),
            Column::new("template".into(), rows.iter().map(|r| r.template.clone()).collect::<Vec<_>>()),
            Column::new("lambda".into(), rows.iter().map(|r| r.lambda).collect::<Vec<_>>()),
            Column::new("seed".into(), rows.iter().map(|r| r.seed).collect::<Vec<_>>()),
            Column::new("dataset".into(), s(|r| r.dataset.clone())),
            Column::new("top1".into(), rows.iter().map(|r| r.top1).collect::<Vec<_>>()),
            Column::new("top5".into(), rows.iter().map(|r| r.top5).collect::<Vec<_>>()),
            Column::new("mean_per_class".into(), rows.iter().map(|r| r.mean_per_class).collect::<Vec<_>>()),
            Column::new("n_images".into(), rows.iter().map(|r| r.n_images as u64).collect::<Vec<_>>()),
            Column::new("n_failed".into(), rows.iter().map(|r| r.n_failed as u64).collect::<Vec<_>>()),
            Column::new("name_score".into(), rows.iter().map(|r| r.name_score).collect::<Vec<_>>()),
            Column::new("dataset_kind".into(), s(|r| r.dataset_kind.clone())),
            Column::new("shots".into(), rows.iter().map(|r| r.shots.map(|k| k as u64)).collect::<Vec<_>>()),
            Column::new(
                "train_dataset".into(),
                rows.iter().map(|r| r.train_dataset.clone()).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Rebuild `results.parquet` and `results.csv` from the run records (atomically). With
/// `keep`, only runs with those keys count: records of jobs no longer in the sweep (an edited
/// config) stay on disk but never mix into its tables.
pub fn write_tables(results: &Path, keep: Option<&std::collections::BTreeSet<String>>) -> Result<usize> {
    let runs: Vec<RunRecord> = match keep {
        Some(k) => read_runs_of(results, k)?,
        None => read_runs(results)?,
    };
    let rows = table_rows(results, &runs)?;
    let mut df = frame(&rows)?;
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df)?;
    ntlb_core::atomic::write_atomic(&results.join("results.parquet"), &buf)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &rows {
        w.serialize(r)?;
    }
    ntlb_core::atomic::write_atomic(&results.join("results.csv"), &w.into_inner()?)?;
    Ok(rows.len())
}

/// Read `results.parquet` back into rows (the report's input).
pub fn read_table(results: &Path) -> Result<Vec<ResultRow>> {
    let path = results.join("results.parquet");
    let file = std::fs::File::open(&path).with_context(|| format!("{}: no results table (run `ntlb sweep` first)", path.display()))?;
    let df = ParquetReader::new(file).finish()?;
    let n = df.height();
    let st = |c: &str| -> Result<Vec<Option<String>>> { Ok(df.column(c)?.str()?.iter().map(|v| v.map(String::from)).collect()) };
    let f64s = |c: &str| -> Result<Vec<Option<f64>>> { Ok(df.column(c)?.f64()?.iter().collect()) };
    let u64s = |c: &str| -> Result<Vec<Option<u64>>> { Ok(df.column(c)?.u64()?.iter().collect()) };
    let (sweep, key, model, method, template, dataset) = (
        st("sweep")?,
        st("run_key")?,
        st("model")?,
        st("method")?,
        st("template")?,
        st("dataset")?,
    );
    let (lambda, top1, top5, mpc) = (f64s("lambda")?, f64s("top1")?, f64s("top5")?, f64s("mean_per_class")?);
    // Tables written before the column existed read as "not measured".
    let name_score = if df.column("name_score").is_ok() {
        f64s("name_score")?
    } else {
        vec![None; n]
    };
    // Tables written before dataset entries had names: the kind is the dataset.
    let kind = if df.column("dataset_kind").is_ok() {
        st("dataset_kind")?
    } else {
        vec![None; n]
    };
    // Tables written before the job model had these axes: filled in by `fill_defaults`.
    let shots = if df.column("shots").is_ok() {
        u64s("shots")?
    } else {
        vec![None; n]
    };
    let train_dataset = if df.column("train_dataset").is_ok() {
        st("train_dataset")?
    } else {
        vec![None; n]
    };
    let (seed, ni, nf) = (u64s("seed")?, u64s("n_images")?, u64s("n_failed")?);
    let methods = method
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let m = m.as_deref().unwrap_or_default();
            Method::parse(m).with_context(|| format!("{}: row {}: unknown method `{m}`", path.display(), i + 1))
        })
        .collect::<Result<Vec<Method>>>()?;
    Ok((0..n)
        .map(|i| ResultRow {
            sweep: sweep[i].clone().unwrap_or_default(),
            run_key: key[i].clone().unwrap_or_default(),
            model: model[i].clone().unwrap_or_default(),
            method: methods[i].clone(),
            template: template[i].clone(),
            lambda: lambda[i],
            seed: seed[i],
            dataset: dataset[i].clone().unwrap_or_default(),
            top1: top1[i].unwrap_or(f64::NAN),
            top5: top5[i].unwrap_or(f64::NAN),
            mean_per_class: mpc[i].unwrap_or(f64::NAN),
            n_images: ni[i].unwrap_or(0) as usize,
            n_failed: nf[i].unwrap_or(0) as usize,
            name_score: name_score[i],
            dataset_kind: kind[i].clone().unwrap_or_default(),
            shots: shots[i].map(|k| k as usize),
            train_dataset: train_dataset[i].clone(),
        })
        .map(|mut r| {
            r.fill_defaults();
            r
        })
        .collect())
}

/// The jobs of a sweep as planned (`plan.json`, written by every `ntlb sweep` run, sharded or
/// not): `merge` keeps exactly these runs, so records of an edited sweep never mix in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub sweep: String,
    /// (key, label) in plan order.
    pub jobs: Vec<(String, String)>,
}

impl Plan {
    pub fn path(results: &Path) -> PathBuf {
        results.join("plan.json")
    }

    /// Written sealed ([`ntlb_core::sealed`]): a changed plan would change which runs a merge keeps.
    pub fn write(&self, results: &Path) -> Result<()> {
        ntlb_core::sealed::write_sealed_json(&Plan::path(results), self)
    }

    /// The plan, checked against its digest; `None` where there is none. A damaged plan is an
    /// error naming it (every `ntlb sweep` run writes it again).
    pub fn read(results: &Path) -> Result<Option<Plan>> {
        let p = Plan::path(results);
        match ntlb_core::sealed::read_sealed_json(&p) {
            Ok(plan) => Ok(Some(plan)),
            Err(e) if ntlb_core::sealed::is_not_found(&e) => Ok(None),
            Err(e) => Err(e.context("not a usable sweep plan: rerun `ntlb sweep` on this folder to write it again")),
        }
    }

    pub fn keys(&self) -> std::collections::BTreeSet<String> {
        self.jobs.iter().map(|(k, _)| k.clone()).collect()
    }

    /// Run records in `results` that are not in this plan: (key, the job's label, or why the
    /// record does not read back). They are never read into tables, damaged or not.
    pub fn stale_runs(&self, results: &Path) -> Result<Vec<(String, String)>> {
        let keys = self.keys();
        Ok(record_files(results)?
            .into_iter()
            .filter(|(k, _)| !keys.contains(k))
            .map(|(k, p)| {
                let what = RunRecord::read(&p).map_or_else(|e| format!("(damaged: {e:#})"), |r| r.job.label());
                (k, what)
            })
            .collect())
    }
}

/// Copy the files of `src` that `dest` lacks (a run's folder: split, learned prompts).
fn copy_missing(src: &Path, dest: &Path) -> Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(src).with_context(|| format!("{}: cannot list", src.display()))? {
        let e = e?;
        let (s, d) = (e.path(), dest.join(e.file_name()));
        if e.file_type()?.is_dir() {
            n += copy_missing(&s, &d)?;
        } else if !d.exists() && !e.file_name().to_string_lossy().starts_with('.') {
            let bytes = std::fs::read(&s).with_context(|| format!("{}: cannot read", s.display()))?;
            ntlb_core::atomic::write_atomic(&d, &bytes).with_context(|| format!("{}: cannot write", d.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[derive(Debug, Default)]
pub struct MergeSummary {
    pub rows: usize,
    pub runs: usize,
    pub files_copied: usize,
    /// (shard folder, key, label) of records left out: not in the sweep's plan.
    pub stale: Vec<(PathBuf, String, String)>,
}

/// Join the run records (and `runs/<key>/` folders) of several result folders (shards) into
/// `out` and write its tables. The shards' plans must agree; runs outside the plan are left
/// out and listed; a job whose rows differ between shards (or from `out`'s record) is refused.
/// `out` may be one of the shards (array tasks that share one results folder): its tables are
/// then rebuilt in place. Every folder and record is checked before anything is written, so a
/// refused merge leaves `out` as it was.
pub fn merge_all(out: &Path, shards: &[PathBuf]) -> Result<MergeSummary> {
    let mut folders: Vec<PathBuf> = shards.to_vec();
    if folders.is_empty() {
        folders.push(out.to_path_buf());
    }
    for s in &folders {
        if !s.is_dir() {
            bail!("{}: no such results folder: nothing merged", s.display());
        }
        if !Plan::path(s).exists() && !s.join("runs").is_dir() {
            bail!(
                "{}: not a sweep's results folder (no plan.json, no runs/): nothing merged",
                s.display()
            );
        }
    }
    let mut plan: Option<(Plan, PathBuf)> = None;
    let with_plan: Vec<bool> = folders.iter().map(|s| Plan::path(s).exists()).collect();
    for s in &folders {
        match (Plan::read(s)?, &plan) {
            (Some(p), None) => plan = Some((p, s.clone())),
            (Some(p), Some((q, from))) if p != *q => bail!(
                "{} and {} hold plans of different sweeps (or of the same sweep with other settings): refusing to merge",
                Plan::path(s).display(),
                Plan::path(from).display()
            ),
            (None, _) if with_plan.iter().any(|&b| b) => bail!(
                "{}: no plan.json while other shards have one: not a shard of this sweep",
                s.display()
            ),
            _ => {}
        }
    }
    let keep = plan.as_ref().map(|(p, _)| p.keys());
    let mut summary = MergeSummary::default();
    let out_canon = out.canonicalize().ok();
    // Every record read and compared first: with each other, and with what `out` holds.
    let mut seen: std::collections::BTreeMap<String, (Vec<ResultRow>, PathBuf)> = Default::default();
    let mut to_write: Vec<RunRecord> = Vec::new();
    let mut folders_to_copy: Vec<(PathBuf, PathBuf)> = Vec::new();
    for s in &folders {
        let same = out_canon.is_some() && s.canonicalize().ok() == out_canon;
        for (key, path) in record_files(s)? {
            if keep.as_ref().is_some_and(|k| !k.contains(&key)) {
                let what = RunRecord::read(&path).map_or_else(|e| format!("(damaged: {e:#})"), |r| r.job.label());
                summary.stale.push((s.clone(), key, what));
                continue;
            }
            let r = RunRecord::read(&path)?;
            summary.runs += 1;
            let dest = out.join("runs").join(format!("{}.json", r.key));
            match seen.get(&r.key) {
                Some((rows, from)) => {
                    if !same_results(rows, &r.rows) {
                        bail!(
                            "run {} differs between {} and {}: refusing to merge (nothing written)",
                            r.key,
                            from.display(),
                            path.display()
                        );
                    }
                }
                None => {
                    if !same && dest.exists() {
                        let existing = RunRecord::read(&dest)?;
                        if !same_results(&existing.rows, &r.rows) {
                            bail!(
                                "run {} differs between {} and {}: refusing to merge (nothing written)",
                                r.key,
                                path.display(),
                                dest.display()
                            );
                        }
                    } else if !same {
                        to_write.push(r.clone());
                    }
                    seen.insert(r.key.clone(), (r.rows.clone(), path.clone()));
                }
            }
            let dir = s.join("runs").join(&r.key);
            if !same && dir.is_dir() {
                folders_to_copy.push((dir, out.join("runs").join(&r.key)));
            }
        }
    }
    std::fs::create_dir_all(out.join("runs")).with_context(|| format!("{}: cannot create", out.join("runs").display()))?;
    for r in &to_write {
        r.write(&out.join("runs").join(format!("{}.json", r.key)))?;
    }
    for (src, dest) in &folders_to_copy {
        summary.files_copied += copy_missing(src, dest)?;
    }
    if let Some((p, _)) = &plan {
        p.write(out)?;
    }
    summary.rows = write_tables(out, keep.as_ref())?;
    Ok(summary)
}

/// The same rows, sweep names aside (shards may have reused records of a sweep's old name).
fn same_results(a: &[ResultRow], b: &[ResultRow]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_result(y))
}

/// [`merge_all`], returning the number of result rows.
pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<usize> {
    Ok(merge_all(out, shards)?.rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ntlb_prompt::train::LossPoint;

    fn p(epoch: usize, loss: f64, acc: f64) -> LossPoint {
        LossPoint {
            epoch,
            step: 0,
            lr: 0.1,
            loss,
            ce: loss / 2.0,
            expl: -loss / 4.0,
            acc,
        }
    }

    #[test]
    fn epoch_curve_averages_the_steps_of_each_epoch() {
        let c = epoch_curve(&[p(1, 2.0, 50.0), p(1, 4.0, 100.0), p(2, 1.0, 0.0)]);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].epoch, c[0].loss, c[0].ce, c[0].expl, c[0].acc), (1, 3.0, 1.5, -0.75, 75.0));
        assert_eq!((c[1].epoch, c[1].loss, c[1].acc), (2, 1.0, 0.0));
        assert!(epoch_curve(&[]).is_empty());
    }
}
