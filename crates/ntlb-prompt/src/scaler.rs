//! Dynamic loss scaling for half-precision training: the objective is multiplied by a power of
//! two before its backward and the context gradient divided by it after (exact: powers of two
//! only move the exponent). A step whose gradient is not finite is skipped and the scale halved;
//! after `growth_interval` good steps in a row it doubles again, up to `max`.
//!
//! f16's largest value is 65504, and the relevance backward of ntlb's objective overflows it at
//! λ = 1 from the first step, so the scale starts at 1 and mainly backs off (torch's GradScaler
//! starts at 2^16 because its losses are float32; here the whole graph is f16).

use anyhow::{bail, Result};
use burn::tensor::{Device, FloatDType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScaleMode {
    /// On when the model's floats are f16 (bf16 has float32's range and needs none).
    #[default]
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossScaleConfig {
    pub mode: ScaleMode,
    /// First scale (a power of two).
    pub init: f64,
    /// Good steps in a row before the scale doubles.
    pub growth_interval: usize,
    pub max: f64,
    /// Below this the run stops: the overflow is not one that scaling can cure.
    pub min: f64,
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        LossScaleConfig {
            mode: ScaleMode::Auto,
            init: 1.0,
            growth_interval: 100,
            max: 65536.0,
            min: 2f64.powi(-24),
        }
    }
}

impl LossScaleConfig {
    pub fn enabled(&self, device: &Device) -> bool {
        match self.mode {
            ScaleMode::On => true,
            ScaleMode::Off => false,
            ScaleMode::Auto => device.settings().float_dtype == FloatDType::F16,
        }
    }

    pub fn check(&self) -> Result<()> {
        for (name, v) in [("init", self.init), ("max", self.max), ("min", self.min)] {
            if !(v.is_finite() && v > 0.0 && v.log2().fract() == 0.0) {
                bail!("loss_scale.{name} = {v}: must be a positive power of two");
            }
        }
        if !(self.min <= self.init && self.init <= self.max) {
            bail!("loss_scale: need min <= init <= max");
        }
        if self.growth_interval == 0 {
            bail!("loss_scale.growth_interval must be at least 1");
        }
        Ok(())
    }
}

/// The scaler's running state (saved with the resumable state, so a resumed run continues it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub good_steps: usize,
    /// Steps skipped so far for a non-finite gradient.
    pub skipped: usize,
}

impl LossScaler {
    pub fn new(cfg: &LossScaleConfig) -> Self {
        LossScaler {
            scale: cfg.init,
            good_steps: 0,
            skipped: 0,
        }
    }

    /// Record a step with a finite gradient (it is applied).
    pub fn good(&mut self, cfg: &LossScaleConfig) {
        self.good_steps += 1;
        if self.good_steps >= cfg.growth_interval && self.scale * 2.0 <= cfg.max {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
    }

    /// Record a step with a non-finite gradient (it is skipped); fails once the scale would fall below `min`.
    pub fn overflow(&mut self, cfg: &LossScaleConfig) -> Result<()> {
        self.skipped += 1;
        self.good_steps = 0;
        if self.scale / 2.0 < cfg.min {
            bail!(
                "the gradient is not finite even at loss scale {} (loss_scale.min {}): not an overflow that scaling cures",
                self.scale,
                cfg.min
            );
        }
        self.scale /= 2.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_overflow_and_grows_after_good_steps() {
        let cfg = LossScaleConfig {
            growth_interval: 3,
            max: 4.0,
            ..LossScaleConfig::default()
        };
        let mut s = LossScaler::new(&cfg);
        s.overflow(&cfg).unwrap();
        s.overflow(&cfg).unwrap();
        assert_eq!((s.scale, s.skipped), (0.25, 2));
        s.good(&cfg);
        s.good(&cfg);
        assert_eq!(s.scale, 0.25);
        s.overflow(&cfg).unwrap(); // resets the run of good steps
        for _ in 0..3 {
            s.good(&cfg);
        }
        assert_eq!(s.scale, 0.25);
        for _ in 0..3 * 5 {
            s.good(&cfg);
        }
        assert_eq!(s.scale, 4.0, "grows every 3 good steps, capped at max");
    }

    #[test]
    fn gives_up_below_min() {
        let cfg = LossScaleConfig {
            min: 0.5,
            ..LossScaleConfig::default()
        };
        let mut s = LossScaler::new(&cfg);
        s.overflow(&cfg).unwrap();
        assert!(s.overflow(&cfg).unwrap_err().to_string().contains("not an overflow that scaling cures"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = LossScaleConfig {
            init: 3.0,
            ..LossScaleConfig::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("loss_scale.init"));
        assert!(LossScaleConfig::default().check().is_ok());
    }
}
