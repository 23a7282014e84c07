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

#[cfg(feature = "tch")]
fn cuda_device(index: usize) -> anyhow::Result<Device> {
    Ok(Device::libtorch_cuda(index))
}

#[cfg(not(feature = "tch"))]
fn cuda_device(_index: usize) -> anyhow::Result<Device> {
    anyhow::bail!("this ntlb was built without a GPU backend: rebuild with `cargo build --release --features tch` (see README, GPU)")
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
