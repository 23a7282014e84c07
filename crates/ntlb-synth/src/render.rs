//! Drawing coloured shapes: a small anti-aliased rasteriser (2×2 supersampling).

use rand::Rng;

pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [215, 40, 40]),
    ("green", [40, 165, 60]),
    ("blue", [45, 85, 220]),
    ("yellow", [235, 205, 40]),
    ("purple", [145, 60, 190]),
    ("orange", [245, 135, 30]),
];
pub const SHAPES: [&str; 8] = ["circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon"];

/// Whether shape-local point (x, y) (unit size) is inside the shape.
pub fn inside(shape: usize, x: f32, y: f32) -> bool {
    let r = (x * x + y * y).sqrt();
    match SHAPES[shape] {
        "circle" => r < 0.9,
        "square" => x.abs() < 0.72 && y.abs() < 0.72,
        "triangle" => y > -0.7 && y < 0.8 && x.abs() < (0.8 - y) * 0.58,
        "star" => {
            let a = y.atan2(x);
            r < 0.45 + 0.45 * ((a * 5.0).cos() * 0.5 + 0.5).powf(2.0)
        }
        "cross" => (x.abs() < 0.28 && y.abs() < 0.9) || (y.abs() < 0.28 && x.abs() < 0.9),
        "ring" => r < 0.9 && r > 0.55,
        "diamond" => x.abs() + y.abs() < 0.95,
        "hexagon" => {
            let (ax, ay) = (x.abs(), y.abs());
            ay < 0.8 && ax * 0.866 + ay * 0.5 < 0.8
        }
        _ => false,
    }
}

/// How one object is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Placement {
    pub cx: f32,
    pub cy: f32,
    pub size: f32,
    pub angle: f32,
}

impl Placement {
    pub fn random(rng: &mut impl Rng, w: usize, scale: (f32, f32), jitter: f32) -> Placement {
        let size = rng.random_range(scale.0..scale.1) * w as f32 / 2.0;
        Placement {
            cx: w as f32 / 2.0 + rng.random_range(-jitter..jitter) * w as f32,
            cy: w as f32 / 2.0 + rng.random_range(-jitter..jitter) * w as f32,
            size,
            angle: rng.random_range(0.0..std::f32::consts::TAU),
        }
    }

    fn local(&self, px: f32, py: f32) -> (f32, f32) {
        let (dx, dy) = ((px - self.cx) / self.size, (py - self.cy) / self.size);
        let (s, c) = self.angle.sin_cos();
        (dx * c + dy * s, -dx * s + dy * c)
    }

    /// Coverage (0..1) of pixel (x, y) by the shape; `outline` > 0 draws only a band that wide
    /// (in shape units) along the edge.
    pub fn coverage(&self, shape: usize, x: usize, y: usize, outline: f32) -> f32 {
        let mut hit = 0;
        for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
            let (u, v) = self.local(x as f32 + ox, y as f32 + oy);
            let inn = inside(shape, u, v);
            let on = if outline > 0.0 {
                let k = 1.0 + outline;
                inn && !inside(shape, u * k, v * k)
            } else {
                inn
            };
            hit += usize::from(on);
        }
        hit as f32 / 4.0
    }
}

/// An RGB canvas.
pub struct Canvas {
    pub w: usize,
    pub px: Vec<[f32; 3]>,
}

impl Canvas {
    /// A textured background: a gradient between two random muted colours plus noise.
    pub fn background(rng: &mut impl Rng, w: usize, brightness: f32) -> Canvas {
        let a: [f32; 3] = std::array::from_fn(|_| rng.random_range(60.0..190.0) * brightness);
        let b: [f32; 3] = std::array::from_fn(|_| rng.random_range(60.0..190.0) * brightness);
        let px = (0..w * w)
            .map(|i| {
                let t = (i / w) as f32 / w as f32;
                std::array::from_fn(|c| a[c] * (1.0 - t) + b[c] * t + rng.random_range(-14.0..14.0))
            })
            .collect();
        Canvas { w, px }
    }

    pub fn plain(w: usize, v: f32) -> Canvas {
        Canvas {
            w,
            px: vec![[v; 3]; w * w],
        }
    }

    /// Paint a shape with colour `fill(x, y)`.
    pub fn draw(&mut self, shape: usize, p: &Placement, outline: f32, fill: impl Fn(usize, usize) -> [f32; 3]) {
        for y in 0..self.w {
            for x in 0..self.w {
                let c = p.coverage(shape, x, y, outline);
                if c > 0.0 {
                    let f = fill(x, y);
                    let d = &mut self.px[y * self.w + x];
                    for k in 0..3 {
                        d[k] = d[k] * (1.0 - c) + f[k] * c;
                    }
                }
            }
        }
    }

    /// Three passes of a box blur of radius `r` (close to a Gaussian), edges clamped.
    pub fn blur(&mut self, r: usize) {
        let w = self.w;
        for _ in 0..3 {
            for horizontal in [true, false] {
                let src = self.px.clone();
                for y in 0..w {
                    for x in 0..w {
                        let mut acc = [0.0f32; 3];
                        for d in 0..=2 * r {
                            let o = d as isize - r as isize;
                            let (sx, sy) = if horizontal {
                                ((x as isize + o).clamp(0, w as isize - 1) as usize, y)
                            } else {
                                (x, (y as isize + o).clamp(0, w as isize - 1) as usize)
                            };
                            let p = src[sy * w + sx];
                            (0..3).for_each(|k| acc[k] += p[k]);
                        }
                        self.px[y * w + x] = acc.map(|v| v / (2 * r + 1) as f32);
                    }
                }
            }
        }
    }

    pub fn rect(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, colour: [f32; 3]) {
        for y in y0.min(self.w)..y1.min(self.w) {
            for x in x0.min(self.w)..x1.min(self.w) {
                self.px[y * self.w + x] = colour;
            }
        }
    }

    pub fn to_rgb(&self) -> image::RgbImage {
        image::RgbImage::from_fn(self.w as u32, self.w as u32, |x, y| {
            let p = self.px[y as usize * self.w + x as usize];
            image::Rgb(p.map(|v| v.clamp(0.0, 255.0) as u8))
        })
    }
}
