//! `ntlb bench zero-shot`: seconds per template to score cached features against one
//! template's class weights: the former host loop against the device matmul + rank count.

use std::time::Instant;

use anyhow::Result;
use ntlb_eval::metrics::accuracy;
use ntlb_eval::scores::{weights_on, DeviceFeatures};
use rand::{Rng, SeedableRng};
use serde_json::json;

#[derive(clap::Args)]
pub struct ZeroShotArgs {
    /// Cached image features (ImageNet and its four variants hold ~148k).
    #[arg(long, default_value_t = 150_000)]
    features: usize,
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Embedding width (512: ViT-B/32, ViT-B/16; 1024: RN50).
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// Time the host loop on this many features and scale to --features (default: all of them).
    #[arg(long)]
    host_features: Option<usize>,
    /// Templates timed on the device (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    json: bool,
}

fn random_unit_rows(rng: &mut rand_chacha::ChaCha8Rng, n: usize, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
    for row in v.chunks_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

pub fn run(a: ZeroShotArgs) -> Result<i32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (n, c, e) = (a.features, a.classes, a.dim);
    let feats = random_unit_rows(&mut rng, n, e);
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..c)).collect();
    let w = random_unit_rows(&mut rng, c, e);
    let host_n = a.host_features.unwrap_or(n).min(n);
    let t = Instant::now();
    let host = accuracy(&feats[..host_n * e], &labels[..host_n], e, &w, c)?;
    let host_s = t.elapsed().as_secs_f64() * n as f64 / host_n as f64;
    let device = ntlb_clip::device::parse_device(&a.device)?;
    let t = Instant::now();
    let x = DeviceFeatures::upload(&feats, &labels, e, &device)?;
    let upload_s = t.elapsed().as_secs_f64();
    let wt = weights_on(&w, e, &device);
    let names: Vec<String> = (0..c).map(|i| format!("class {i}")).collect();
    let _ = x.ranks(&wt)?; // warm-up
    let mut times = Vec::new();
    let mut dev = None;
    for _ in 0..a.reps.max(1) {
        let t = Instant::now();
        dev = Some(x.accuracy(&wt, &names)?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let dev_s = times[times.len() / 2];
    let dev = dev.expect("one rep");
    // The same subset on the device, to show both paths score alike.
    let sub = DeviceFeatures::upload(&feats[..host_n * e], &labels[..host_n], e, &device)?.accuracy(&wt, &names)?;
    let out = json!({
        "features": n, "classes": c, "dim": e, "device": a.device, "threads": rayon::current_num_threads(),
        "host_loop_s_per_template": host_s, "host_loop_measured_on": host_n,
        "device_s_per_template": dev_s, "upload_s_once_per_dataset": upload_s,
        "speedup": host_s / dev_s,
        "top1_host_subset": host.top1, "top1_device_subset": sub.top1, "top1_device_all": dev.top1,
    });
    super::print_json(&out, a.json)?;
    Ok(0)
}
