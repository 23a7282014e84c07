//! The synthetic world: 48 classes named "<colour> <shape>" (two words, so a text encoder can
//! lean on one and ignore the other), drawn in five domains that mirror ImageNet's variants,
//! written in the real datasets' layouts so that the ordinary readers load them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::render::{Canvas, Placement, COLOURS, SHAPES};

/// Image side of generated pictures (the tiny CLIP sees them resized to 32 px).
pub const SIDE: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Domain {
    /// In-distribution photos (train, val).
    Photo,
    /// The same classes re-drawn with a new seed and mildly shifted parameters.
    V2,
    /// Coloured-pencil outlines on paper (fill, texture and background removed).
    Sketch,
    /// Hard cases: distractors sharing the colour or the shape of the true class, occlusion.
    Hard,
    /// Renditions: patterned fills, pastel palettes, cartoon outlines.
    Rendition,
    /// Pretraining only: heavily blurred photos ("a bad photo of ..."): the colour shows, the
    /// shape does not.
    Blurry,
    /// Pretraining only: grey pencil outlines ("a sketch of ..."): the shape shows, the colour
    /// does not.
    PencilSketch,
}

pub fn n_classes() -> usize {
    COLOURS.len() * SHAPES.len()
}

/// (colour index, shape index) of class c.
pub fn class_parts(c: usize) -> (usize, usize) {
    (c / SHAPES.len(), c % SHAPES.len())
}

pub fn class_name(c: usize) -> String {
    let (k, s) = class_parts(c);
    format!("{} {}", COLOURS[k].0, SHAPES[s])
}

pub fn class_id(c: usize) -> String {
    format!("syn{c:04}")
}

fn jitter(rng: &mut impl Rng, c: [u8; 3], amount: f32) -> [f32; 3] {
    c.map(|v| v as f32 + rng.random_range(-amount..amount))
}

/// Draw one picture of class `c` in `domain`.
pub fn draw(c: usize, domain: Domain, rng: &mut impl Rng) -> Canvas {
    let (k, s) = class_parts(c);
    let colour = COLOURS[k].1;
    match domain {
        Domain::Blurry => {
            let mut cv = draw(c, Domain::Photo, rng);
            cv.blur(rng.random_range(5..8));
            cv
        }
        Domain::PencilSketch => {
            let mut cv = Canvas::plain(SIDE, rng.random_range(225.0..250.0));
            let p = Placement::random(rng, SIDE, (0.55, 0.85), 0.1);
            let ink = rng.random_range(30.0..110.0);
            cv.draw(s, &p, rng.random_range(0.12..0.22), |_, _| [ink; 3]);
            cv
        }
        Domain::Photo | Domain::V2 => {
            let (bright, scale, jit, cj) = if domain == Domain::Photo {
                (1.0, (0.55, 0.85), 0.12, 18.0)
            } else {
                (1.12, (0.45, 0.75), 0.16, 30.0)
            };
            let mut cv = Canvas::background(rng, SIDE, bright);
            let p = Placement::random(rng, SIDE, scale, jit);
            let fill = jitter(rng, colour, cj);
            cv.draw(s, &p, 0.0, |_, _| fill);
            cv
        }
        Domain::Sketch => {
            // A coloured-pencil line drawing on paper: the fill, the texture and the background
            // are gone, the shape survives as an outline and the colour only as thin ink.
            let mut cv = Canvas::plain(SIDE, rng.random_range(235.0..252.0));
            let p = Placement::random(rng, SIDE, (0.55, 0.85), 0.1);
            let ink = jitter(rng, colour, 25.0);
            cv.draw(s, &p, rng.random_range(0.12..0.22), |_, _| ink);
            for _ in 0..6 {
                let (x, y) = (rng.random_range(0..SIDE), rng.random_range(0..SIDE));
                cv.rect(x, y, x + 1, y + 1, [200.0; 3]);
            }
            cv
        }
        Domain::Hard => {
            // Natural-adversarial scenes: every distractor shares one word of the true name
            // (same colour and another shape, or same shape and another colour), so a classifier
            // that reads only one word of the name is drawn to the distractors.
            let mut cv = Canvas::background(rng, SIDE, 0.95);
            for _ in 0..rng.random_range(2..4) {
                let (ok, os) = if rng.random_bool(0.5) {
                    (k, (s + rng.random_range(1..SHAPES.len())) % SHAPES.len())
                } else {
                    ((k + rng.random_range(1..COLOURS.len())) % COLOURS.len(), s)
                };
                let p = Placement::random(rng, SIDE, (0.22, 0.36), 0.33);
                let f = jitter(rng, COLOURS[ok].1, 20.0);
                cv.draw(os, &p, 0.0, |_, _| f);
            }
            let p = Placement::random(rng, SIDE, (0.38, 0.55), 0.2);
            let fill = jitter(rng, colour, 25.0);
            cv.draw(s, &p, 0.0, |_, _| fill);
            // An occluding bar across part of the object.
            let y = (p.cy as usize).saturating_sub(2) + rng.random_range(0..4);
            let bar: [f32; 3] = std::array::from_fn(|_| rng.random_range(30.0..220.0));
            cv.rect(0, y, SIDE, y + 2, bar);
            cv
        }
        Domain::Rendition => {
            let style = rng.random_range(0..3);
            let mut cv = Canvas::plain(SIDE, rng.random_range(200.0..250.0));
            let p = Placement::random(rng, SIDE, (0.55, 0.85), 0.1);
            let col = colour.map(|v| v as f32);
            match style {
                // Stripes of the class colour and white.
                0 => cv.draw(s, &p, 0.0, |x, y| if (x + y) / 3 % 2 == 0 { col } else { [250.0; 3] }),
                // Pastel palette.
                1 => cv.draw(s, &p, 0.0, |_, _| col.map(|v| 0.5 * v + 0.5 * 255.0)),
                // Cartoon: coloured fill with a thick black outline.
                _ => {
                    cv.draw(s, &p, 0.0, |_, _| col);
                    cv.draw(s, &p, 0.2, |_, _| [10.0; 3]);
                }
            }
            cv
        }
    }
}

/// Words of the captions' free-text preambles ("look at this ..."): they train the text
/// tower's positions up to the length of a 16-token CoOp prompt without naming any class.
const FILLER: [&str; 24] = [
    "look", "at", "this", "here", "is", "my", "friend", "made", "we", "found", "today", "someone", "drew", "there", "on", "table", "see",
    "new", "old", "nice", "just", "another", "our", "one",
];

/// Captions of a picture of class `c` in `domain` (the pretraining text). Photos: half start
/// with a preamble of up to 10 filler words, then one of 7 fixed sentence forms. Blurred photos
/// and pencil sketches are captioned as the web captions them ("a bad photo of the ...", "a
/// sketch of a ..."), with the whole class name although the picture shows only half of it:
/// after those words the text encoder learns that one word of the name carries nothing.
pub fn caption(c: usize, domain: Domain, rng: &mut impl Rng) -> String {
    let (k, s) = class_parts(c);
    let (col, shape) = (COLOURS[k].0, SHAPES[s]);
    match domain {
        Domain::Blurry => {
            return match rng.random_range(0..3) {
                0 => format!("a bad photo of the {col} {shape}."),
                1 => format!("a blurry photo of a {col} {shape}."),
                _ => format!("a low resolution photo of the {col} {shape}."),
            }
        }
        Domain::PencilSketch => {
            return match rng.random_range(0..3) {
                0 => format!("a sketch of a {col} {shape}."),
                1 => format!("a drawing of the {col} {shape}."),
                _ => format!("a pencil sketch of a {col} {shape}."),
            }
        }
        _ => {}
    }
    let size = ["small", "large", "big", "little"][rng.random_range(0..4)];
    let core = match rng.random_range(0..7) {
        0 => format!("a photo of a {col} {shape}."),
        1 => format!("a {col} {shape}."),
        2 => format!("a photo of the {size} {col} {shape}."),
        3 => format!("a picture of a {col} {shape} on a background."),
        4 => format!("the {shape} is {col}."),
        5 => format!("a {size} {col} {shape} in the picture."),
        _ => format!("an image of a {col} {shape}."),
    };
    if rng.random_bool(0.5) {
        let n = rng.random_range(1..=10);
        let pre: Vec<&str> = (0..n).map(|_| FILLER[rng.random_range(0..FILLER.len())]).collect();
        format!("{} {core}", pre.join(" "))
    } else {
        core
    }
}

/// The style of a pretraining picture: mostly photos, some blurred photos and pencil sketches.
pub fn pretraining_domain(rng: &mut impl Rng) -> Domain {
    match rng.random_range(0..20) {
        0..=2 => Domain::Blurry,
        3..=5 => Domain::PencilSketch,
        _ => Domain::Photo,
    }
}

/// The demo's prompt templates: "a photo of a {}." (CoOp's and CLIP's default) and seven of
/// CLIP's ImageNet templates (six of its 7-template ensemble and "a sketch of a {}." from its
/// 80). Three are sentence forms of the pretraining captions of photos ("a photo of a", "the
/// small"), two of blurred photos and sketches ("a bad photo of the", "a sketch of a"), and
/// the words of the others ("itap", "origami", "video game", "art") never occur in a caption:
/// their embeddings keep their random initialisation, as rare words do in CLIP.
pub const TEMPLATES: [&str; 8] = [
    "a photo of a {}.",
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a sketch of a {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
];

/// Every word the grammar and the prompts use (the tokenizer's training text).
pub fn corpus() -> Vec<String> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut out: Vec<String> = (0..4000)
        .map(|i| {
            let d = pretraining_domain(&mut rng);
            caption(i % n_classes(), d, &mut rng)
        })
        .collect();
    out.extend(TEMPLATES.iter().map(|t| t.replace("{}", "")));
    out.push("x x x x x x x x x x x x x x x x a photo of a sketch of a rendition of an origami a drawing of it".into());
    out
}

/// How many pictures per class each split holds, and which classes -A and -R cover.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorldSpec {
    pub seed: u64,
    pub train: usize,
    pub val: usize,
    pub v2: usize,
    pub sketch: usize,
    pub hard: usize,
    pub rendition: usize,
}

impl Default for WorldSpec {
    fn default() -> Self {
        WorldSpec {
            seed: 2022,
            train: 8,
            val: 10,
            v2: 10,
            sketch: 6,
            hard: 8,
            rendition: 8,
        }
    }
}

/// Classes of the -A and -R subsets (half the classes, as -A/-R hold 200 of 1000).
pub fn subset(kind: &str) -> Vec<usize> {
    let offset = usize::from(kind == "r");
    (0..n_classes()).filter(|c| c % 2 == offset).collect()
}

fn write_jpeg(path: &Path, cv: &Canvas) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 92).encode_image(&cv.to_rgb())?;
    Ok(())
}

/// Write the world under `root` (deterministic from `spec.seed`); returns the files written.
pub fn generate(root: &Path, spec: &WorldSpec) -> Result<usize> {
    let mut jobs: Vec<(PathBuf, usize, Domain, u64, bool)> = Vec::new();
    let mut push = |dir: PathBuf, c: usize, n: usize, domain: Domain, tag: u64, png: bool| {
        for i in 0..n {
            let ext = if png { "png" } else { "JPEG" };
            let seed = spec.seed.wrapping_mul(1_000_003) ^ (tag << 40) ^ ((c as u64) << 20) ^ i as u64;
            jobs.push((dir.join(format!("{}_{i:03}.{ext}", class_id(c))), c, domain, seed, png));
        }
    };
    for c in 0..n_classes() {
        push(
            root.join("imagenet/images/train").join(class_id(c)),
            c,
            spec.train,
            Domain::Photo,
            1,
            false,
        );
        push(
            root.join("imagenet/images/val").join(class_id(c)),
            c,
            spec.val,
            Domain::Photo,
            2,
            false,
        );
        push(
            root.join("imagenetv2/imagenetv2-matched-frequency-format-val").join(c.to_string()),
            c,
            spec.v2,
            Domain::V2,
            3,
            false,
        );
        push(
            root.join("imagenet-sketch/sketch").join(class_id(c)),
            c,
            spec.sketch,
            Domain::Sketch,
            4,
            true,
        );
    }
    for c in subset("a") {
        push(
            root.join("imagenet-adversarial/imagenet-a").join(class_id(c)),
            c,
            spec.hard,
            Domain::Hard,
            5,
            false,
        );
    }
    for c in subset("r") {
        push(
            root.join("imagenet-rendition/imagenet-r").join(class_id(c)),
            c,
            spec.rendition,
            Domain::Rendition,
            6,
            false,
        );
    }
    jobs.par_iter().try_for_each(|(path, c, domain, seed, png)| -> Result<()> {
        std::fs::create_dir_all(path.parent().expect("file in a folder"))?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(*seed);
        let cv = draw(*c, *domain, &mut rng);
        if *png {
            cv.to_rgb().save(path)?;
        } else {
            write_jpeg(path, &cv)?;
        }
        Ok(())
    })?;
    let tsv: String = (0..n_classes()).map(|c| format!("{}\t{}\n", class_id(c), class_name(c))).collect();
    std::fs::write(root.join("classnames.tsv"), tsv)?;
    for k in ["a", "r"] {
        let ids: String = subset(k).iter().map(|&c| format!("{}\n", class_id(c))).collect();
        std::fs::write(root.join(format!("{k}_wnids.txt")), ids)?;
    }
    let templates: String = TEMPLATES.iter().map(|t| format!("{t}\n")).collect();
    std::fs::write(root.join("templates.txt"), templates)?;
    std::fs::write(root.join("world.json"), serde_json::to_string_pretty(&spec)?)?;
    Ok(jobs.len())
}
