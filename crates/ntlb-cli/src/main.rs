//! `ntlb`: CLIP explainability-aided prompt learning, benchmarked.

mod bench;
mod demo;
mod explain;
mod fewshot;
mod inspect;
mod parity;
mod regress;
mod sweep;
mod synth;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ntlb",
    version,
    about = "No Token Left Behind: CLIP prompt learning with an explainability loss, reproduced and benchmarked"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// clip.load's download_root, where a clip.load name (`--model ViT-B/32`, or in a sweep
    /// config) finds its file (`ViT-B-32.pt`); default: $NTLB_CLIP_CACHE, else ~/.cache/clip.
    #[arg(long, global = true, value_name = "DIR")]
    clip_cache: Option<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// How a checkpoint will be computed: architecture, activations, normalisation, and why.
    Inspect(inspect::InspectArgs),
    /// Recompute a golden case from its inputs and compare with its expected outputs.
    Parity(parity::ParityArgs),
    /// Speed benchmarks (random weights, real sizes).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// One-shot prompt learning (CoOp), with the explainability loss when λ > 0.
    Train(train::TrainArgs),
    /// The few-shot train and val lists a run of a shot count and seed uses, as the reference draws them.
    Fewshot(fewshot::FewshotArgs),
    /// Per-token relevance of prompts for an image: JSON and a bar chart.
    Explain(explain::ExplainArgs),
    /// Run a sweep (models × datasets × methods × λ × seeds); resumable, shardable.
    Sweep(sweep::SweepArgs),
    /// Join the results of sweep shards.
    Merge(sweep::MergeArgs),
    /// Tables and figures from a sweep's results.
    Report(sweep::ReportArgs),
    /// The embedded default: generate the synthetic world, run configs/demo.toml, report.
    Demo(demo::DemoArgs),
    /// Rerun a short demo and compare with the committed baseline.
    Regress(regress::RegressArgs),
    /// Write the synthetic ImageNet-shaped world (all five dataset layouts).
    GenerateSynth(synth::GenerateArgs),
    /// Pretrain the tiny CLIP of the synthetic world (contrastive, on CPU).
    PretrainSynth(synth::PretrainArgs),
    /// Tokenize texts the way CLIP does and print ids.
    Tokenize(TokenizeArgs),
}

#[derive(clap::Args)]
struct TokenizeArgs {
    /// tokenizer.json (CLIP BPE).
    #[arg(long)]
    tokenizer: std::path::PathBuf,
    /// Cut texts longer than the context (end-of-text kept last) instead of failing.
    #[arg(long)]
    truncate: bool,
    /// Texts to tokenize.
    #[arg(required = true)]
    texts: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    // Through the environment, so that every resolution (and a sweep's worker processes) sees it;
    // set before any thread starts.
    if let Some(dir) = &cli.clip_cache {
        std::env::set_var("NTLB_CLIP_CACHE", dir);
    }
    let result = match cli.command {
        Command::Parity(a) => parity::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bench(b) => bench::run(b),
        Command::Tokenize(a) => tokenize(a),
        Command::Train(a) => train::run(a),
        Command::Fewshot(a) => fewshot::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Sweep(a) => sweep::sweep(a),
        Command::Demo(a) => demo::run(a),
        Command::Regress(a) => regress::run(a),
        Command::GenerateSynth(a) => synth::generate_world(a),
        Command::PretrainSynth(a) => synth::pretrain_synth(a),
        Command::Merge(a) => sweep::merge(a),
        Command::Report(a) => sweep::report(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn tokenize(a: TokenizeArgs) -> anyhow::Result<i32> {
    let tok = ntlb_clip::tokenizer::ClipTokenizer::from_file(&a.tokenizer)?;
    for t in &a.texts {
        let tk = tok.tokenize(t, a.truncate)?;
        let pieces: Vec<String> = tk.ids[..=tk.eot].iter().map(|&i| tok.id_to_token(i).unwrap_or_default()).collect();
        println!(
            "{}",
            serde_json::json!({"text": t, "ids": &tk.ids[..=tk.eot], "eot": tk.eot, "pieces": pieces})
        );
    }
    Ok(0)
}
