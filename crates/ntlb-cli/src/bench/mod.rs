//! `ntlb bench`: throughput with randomly initialised real-size models, one file per benchmark.

mod encode;
mod pipeline;
mod train_step;
mod zero_shot;

use std::path::PathBuf;

use anyhow::Result;
use serde_json::Value;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Images/s and texts/s of the CLIP towers, with PyTorch CPU alongside when available.
    Encode(encode::EncodeArgs),
    /// Seconds per prompt-learning step (forward, loss, backward, update), random weights.
    TrainStep(train_step::TrainStepArgs),
    /// Images/s from JPEG files to features, and of decode + resize alone, with Pillow alongside.
    Pipeline(pipeline::PipelineArgs),
    /// Seconds per template to score cached features (host loop vs device matmul + ranks).
    ZeroShot(zero_shot::ZeroShotArgs),
}

pub fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Encode(a) => encode::run(a),
        BenchCommand::TrainStep(a) => train_step::run(a),
        BenchCommand::Pipeline(a) => pipeline::run(a),
        BenchCommand::ZeroShot(a) => zero_shot::run(a),
    }
}

/// A comparison script of the repository (`scripts/<name>`): the baselines run in Python.
fn script(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(name)
}

/// One JSON object on one line with `--json` (for scripts), indented otherwise.
fn print_json(out: &Value, json: bool) -> Result<()> {
    if json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(out)?);
    }
    Ok(())
}
