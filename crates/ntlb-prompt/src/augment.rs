//! CoOp's training augmentation: torchvision `RandomResizedCrop(n, scale=(min_scale, 1),
//! ratio=(3/4, 4/3), BICUBIC)` then `RandomHorizontalFlip`, then CLIP's normalisation. CoOp's
//! `min_scale` is 0.08 ([`PAPER_MIN_SCALE`]).
//! Dassl converts to RGB when it reads the file ([`augment`] takes that RGB picture); in CLIP's
//! order the crop and resize run in the file's own mode ([`augment_decoded`]).

use ntlb_clip::preprocess::{
    convert_rgb, crop, crop_decoded, resize_bicubic, resize_decoded, to_normalized_chw, ConvertOrder, Kind, Normalization, Raster,
};
use rand::Rng;

/// The smallest crop area of CoOp's RandomResizedCrop, as a fraction of the picture.
pub const PAPER_MIN_SCALE: f64 = 0.08;

/// torchvision's `RandomResizedCrop.get_params`: (top, left, height, width).
pub fn crop_params(rng: &mut impl Rng, width: usize, height: usize, min_scale: f64) -> (usize, usize, usize, usize) {
    let area = (width * height) as f64;
    let (lr0, lr1) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(min_scale..1.0);
        let ratio = rng.random_range(lr0..lr1).exp();
        let w = (target * ratio).sqrt().round() as usize;
        let h = (target / ratio).sqrt().round() as usize;
        if w > 0 && w <= width && h > 0 && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return (top, left, h, w);
        }
    }
    // Fallback: the central crop of the largest allowed aspect ratio.
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < 0.75 {
        (width, ((width as f64 / 0.75).round() as usize).min(height))
    } else if in_ratio > 4.0 / 3.0 {
        (((height as f64 * 4.0 / 3.0).round() as usize).min(width), height)
    } else {
        (width, height)
    };
    ((height - h) / 2, (width - w) / 2, h, w)
}

/// One augmented view `[3, n, n]` of an RGB picture (Dassl's order), normalised.
pub fn augment(img: &Raster, n: usize, min_scale: f64, norm: &Normalization, rng: &mut impl Rng) -> Vec<f32> {
    let (top, left, h, w) = crop_params(rng, img.width, img.height, min_scale);
    let out = resize_bicubic(&crop(img, left, top, w, h), n, n);
    flip_and_normalize(out, n, norm, rng)
}

/// One augmented view of a picture as decoded, converted to RGB in `order`; the random draws
/// are the same in both orders.
#[allow(clippy::too_many_arguments)]
pub fn augment_decoded(
    img: &Raster,
    kind: &Kind,
    n: usize,
    min_scale: f64,
    order: ConvertOrder,
    norm: &Normalization,
    rng: &mut impl Rng,
) -> Vec<f32> {
    match order {
        ConvertOrder::Dassl if img.channels == 3 && *kind == Kind::Plain => augment(img, n, min_scale, norm, rng),
        ConvertOrder::Dassl => augment(&convert_rgb(img.clone(), kind), n, min_scale, norm, rng),
        ConvertOrder::Clip => {
            let (top, left, h, w) = crop_params(rng, img.width, img.height, min_scale);
            let (cropped, kind) = crop_decoded(img, kind, left, top, w, h);
            let out = convert_rgb(resize_decoded(cropped, &kind, n, n), &kind);
            flip_and_normalize(out, n, norm, rng)
        }
    }
}

fn flip_and_normalize(mut out: Raster, n: usize, norm: &Normalization, rng: &mut impl Rng) -> Vec<f32> {
    if rng.random_bool(0.5) {
        let c = out.channels;
        for row in out.data.chunks_exact_mut(n * c) {
            for x in 0..n / 2 {
                for ch in 0..c {
                    row.swap(x * c + ch, (n - 1 - x) * c + ch);
                }
            }
        }
    }
    to_normalized_chw(&out, norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crops_stay_inside_and_cover_the_scale_range() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut small, mut large) = (1.0f64, 0.0f64);
        for _ in 0..2000 {
            let (t, l, h, w) = crop_params(&mut rng, 300, 200, PAPER_MIN_SCALE);
            assert!(t + h <= 200 && l + w <= 300 && h > 0 && w > 0);
            let frac = (h * w) as f64 / 60000.0;
            small = small.min(frac);
            large = large.max(frac);
            let r = w as f64 / h as f64;
            assert!((0.70..=1.40).contains(&r), "aspect {r}");
        }
        // The largest crop of ratio ≤ 4/3 in 300×200 is 266×200 (0.89 of the area).
        assert!(small < 0.12 && large > 0.8, "area fractions {small}..{large}");
    }

    #[test]
    fn augmentation_is_seeded() {
        let img = Raster {
            width: 40,
            height: 30,
            channels: 3,
            data: (0..3600).map(|v| (v % 251) as u8).collect(),
        };
        let a = augment(
            &img,
            16,
            PAPER_MIN_SCALE,
            &Normalization::OPENAI,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(9),
        );
        let b = augment(
            &img,
            16,
            PAPER_MIN_SCALE,
            &Normalization::OPENAI,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(9),
        );
        let c = augment(
            &img,
            16,
            PAPER_MIN_SCALE,
            &Normalization::OPENAI,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(10),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 3 * 16 * 16);
    }

    #[test]
    fn both_orders_agree_on_rgb_and_part_on_palette_pictures() {
        let img = Raster {
            width: 40,
            height: 30,
            channels: 3,
            data: (0..3600).map(|v| (v * 7 % 251) as u8).collect(),
        };
        let view = |kind: &Kind, order| {
            augment_decoded(
                &img,
                kind,
                16,
                PAPER_MIN_SCALE,
                order,
                &Normalization::OPENAI,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(4),
            )
        };
        assert_eq!(view(&Kind::Plain, ConvertOrder::Clip), view(&Kind::Plain, ConvertOrder::Dassl));
        assert_eq!(
            view(&Kind::Plain, ConvertOrder::Dassl),
            augment(
                &img,
                16,
                PAPER_MIN_SCALE,
                &Normalization::OPENAI,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(4)
            )
        );
        // A palette picture: NEAREST in CLIP's order, bicubic on RGB in Dassl's.
        assert_ne!(view(&Kind::Nearest, ConvertOrder::Clip), view(&Kind::Nearest, ConvertOrder::Dassl));
        // 16-bit gray crops its own samples: values above 255 clip after the resize.
        let g16 = Raster {
            width: 40,
            height: 30,
            channels: 1,
            data: Vec::new(),
        };
        let samples: Vec<u16> = (0..1200).map(|v| (v % 40 * 13) as u16).collect();
        let a = augment_decoded(
            &g16,
            &Kind::Gray16(samples.clone()),
            16,
            PAPER_MIN_SCALE,
            ConvertOrder::Clip,
            &Normalization::OPENAI,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(4),
        );
        let b = augment_decoded(
            &g16,
            &Kind::Gray16(samples),
            16,
            PAPER_MIN_SCALE,
            ConvertOrder::Dassl,
            &Normalization::OPENAI,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(4),
        );
        assert_eq!(a.len(), 3 * 16 * 16);
        assert_eq!(b.len(), a.len());
    }
}
