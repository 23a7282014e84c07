//! Run-time device selection. CPU (burn `flex`) is always built; GPU backends are cargo
//! features of the `ntlb` binary (`tch`: LibTorch CUDA).

use burn::tensor::Device;

/// `cpu`, `cuda`, or `cuda:N`.
pub fn parse_device(spec: &str) -> anyhow::Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" || spec == "flex" {
        return Ok(Device::flex());
    }
    if let Some(rest) = spec.strip_prefix("cuda") {
        let index: usize = match rest.strip_prefix(':') {
            Some(i) => i.parse().map_err(|_| anyhow::anyhow!("bad device `{spec}`: expected cuda:N"))?,
            None if rest.is_empty() => 0,
            None => anyhow::bail!("bad device `{spec}`: expected cpu, cuda or cuda:N"),
        };
        return cuda_device(index);
    }
    anyhow::bail!("unknown device `{spec}`: expected cpu, cuda or cuda:N")
}

/// A device whose float tensors use `precision` (`f32`, `bf16` or `f16`); half precision is
/// meant for GPUs (the CPU backend may refuse it).
pub fn parse_device_with(spec: &str, precision: &str) -> anyhow::Result<Device> {
    use burn::tensor::FloatDType;
    let mut d = parse_device(spec)?;
    let dtype = match precision.to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => return Ok(d),
        "bf16" | "bfloat16" => FloatDType::BF16,
        "f16" | "fp16" | "float16" => FloatDType::F16,
        other => anyhow::bail!("unknown precision `{other}`: expected f32, bf16 or f16"),
    };
    d.configure(dtype)
        .map_err(|e| anyhow::anyhow!("device {spec} cannot use {precision}: {e:?}"))?;
    Ok(d)
}

/// burn-tch panics on the first tensor of a CUDA device LibTorch cannot open: ask LibTorch first.
#[cfg(feature = "tch")]
fn cuda_device(index: usize) -> anyhow::Result<Device> {
    let n = tch::Cuda::device_count();
    if n <= 0 {
        anyhow::bail!(
            "--device cuda: LibTorch sees no CUDA device (no NVIDIA GPU or driver on this machine, or a CPU-only torch build); use --device cpu"
        );
    }
    if index as i64 >= n {
        anyhow::bail!("--device cuda:{index}: LibTorch sees {n} CUDA device(s), cuda:0 to cuda:{}", n - 1);
    }
    Ok(Device::libtorch_cuda(index))
}

#[cfg(not(feature = "tch"))]
fn cuda_device(_index: usize) -> anyhow::Result<Device> {
    anyhow::bail!(
        "--device cuda: this ntlb was built without a GPU backend: `make build-tch` builds one into target-tch/ (README, GPU), or use --device cpu"
    )
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "tch"))]
    #[test]
    fn cuda_without_a_gpu_build_is_a_clear_error() {
        for spec in ["cuda", "cuda:1", "CUDA:0"] {
            let e = parse_device_with(spec, "f32").unwrap_err().to_string();
            assert!(
                e.contains("built without a GPU backend") && e.contains("make build-tch"),
                "{spec}: {e}"
            );
        }
    }

    #[test]
    fn bad_specs_are_named() {
        assert!(parse_device("cuda:x").unwrap_err().to_string().contains("cuda:N"));
        assert!(parse_device("tpu").unwrap_err().to_string().contains("unknown device `tpu`"));
        assert!(parse_device_with("cpu", "f8")
            .unwrap_err()
            .to_string()
            .contains("unknown precision"));
    }
}
