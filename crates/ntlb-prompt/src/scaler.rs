//! Dynamic loss scaling for half-precision training: the objective is multiplied by a power of
//! two (kept as its exponent, so configs and saved state round-trip exactly) before its backward and the context gradient divided by it after (exact: powers of two
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
    /// First scale, as log2 (0: scale 1).
    pub init_log2: i32,
    /// Good steps in a row before the scale doubles.
    pub growth_interval: usize,
    pub max_log2: i32,
    /// Below 2^min_log2 the run stops: the overflow is not one that scaling can cure.
    pub min_log2: i32,
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        LossScaleConfig {
            mode: ScaleMode::Auto,
            init_log2: 0,
            growth_interval: 100,
            max_log2: 16,
            min_log2: -24,
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
        // f32's exponent range: a scale outside it is not a finite float.
        for (name, v) in [
            ("init_log2", self.init_log2),
            ("max_log2", self.max_log2),
            ("min_log2", self.min_log2),
        ] {
            if !(-126..=127).contains(&v) {
                bail!("loss_scale.{name} = {v}: must be in -126..=127");
            }
        }
        if !(self.min_log2 <= self.init_log2 && self.init_log2 <= self.max_log2) {
            bail!("loss_scale: need min_log2 <= init_log2 <= max_log2");
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
    pub log2: i32,
    pub good_steps: usize,
    /// Steps skipped so far for a non-finite gradient.
    pub skipped: usize,
}

impl LossScaler {
    pub fn new(cfg: &LossScaleConfig) -> Self {
        LossScaler {
            log2: cfg.init_log2,
            good_steps: 0,
            skipped: 0,
        }
    }

    pub fn scale(&self) -> f32 {
        2f32.powi(self.log2)
    }

    /// Record a step with a finite gradient (it is applied).
    pub fn good(&mut self, cfg: &LossScaleConfig) {
        self.good_steps += 1;
        if self.good_steps >= cfg.growth_interval && self.log2 < cfg.max_log2 {
            self.log2 += 1;
            self.good_steps = 0;
        }
    }

    /// Record a step with a non-finite gradient (it is skipped); fails once the scale would fall below the minimum.
    pub fn overflow(&mut self, cfg: &LossScaleConfig) -> Result<()> {
        self.skipped += 1;
        self.good_steps = 0;
        if self.log2 <= cfg.min_log2 {
            bail!(
                "the gradient is not finite even at loss scale 2^{} (loss_scale.min_log2): not an overflow that scaling cures",
                self.log2
            );
        }
        self.log2 -= 1;
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
            max_log2: 2,
            ..LossScaleConfig::default()
        };
        let mut s = LossScaler::new(&cfg);
        s.overflow(&cfg).unwrap();
        s.overflow(&cfg).unwrap();
        assert_eq!((s.scale(), s.skipped), (0.25, 2));
        s.good(&cfg);
        s.good(&cfg);
        assert_eq!(s.scale(), 0.25);
        s.overflow(&cfg).unwrap(); // resets the run of good steps
        for _ in 0..3 {
            s.good(&cfg);
        }
        assert_eq!(s.scale(), 0.25);
        for _ in 0..3 * 5 {
            s.good(&cfg);
        }
        assert_eq!(s.scale(), 4.0, "grows every 3 good steps, capped at max");
    }

    #[test]
    fn gives_up_below_min() {
        let cfg = LossScaleConfig {
            min_log2: -1,
            ..LossScaleConfig::default()
        };
        let mut s = LossScaler::new(&cfg);
        s.overflow(&cfg).unwrap();
        assert!(s
            .overflow(&cfg)
            .unwrap_err()
            .to_string()
            .contains("not an overflow that scaling cures"));
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = LossScaleConfig {
            init_log2: 17,
            ..LossScaleConfig::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("init_log2 <= max_log2"));
        let bad = LossScaleConfig {
            max_log2: 128,
            ..LossScaleConfig::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("loss_scale.max_log2 = 128"));
        assert!(LossScaleConfig::default().check().is_ok());
    }
}
