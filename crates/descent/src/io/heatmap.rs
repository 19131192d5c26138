//! Explanation heatmaps as PNG: an image and what the model attributes to each of its
//! pixels, drawn over it — the picture `descent explain` saves and `descent report`
//! embeds.
//!
//! One PNG holds three panels side by side, each pixel of the input drawn as a square
//! of `cell` × `cell` screen pixels:
//! 1. the input (grey for one channel; red, green, blue for three; channels summed
//!    otherwise), scaled over its own range;
//! 2. saliency |∂F/∂x| over a greyed copy of the input, in a white → yellow → red heat
//!    scale whose opacity grows with the value;
//! 3. integrated gradients over the greyed input, red where they push the explained
//!    output up and blue where they push it down, opacity by magnitude.
//!
//! Attributions are scaled by their largest magnitude in the panel, so one picture
//! shows where the model looks, not how strongly in absolute terms (the numbers are in
//! `explain.json`).

use crate::error::{Error, Result};

/// An input sample and its attributions, each `h × w × c` values in row-major
/// (height, width, channel) order.
pub struct Heatmap<'a> {
    pub image: &'a [f32],
    pub saliency: &'a [f32],
    pub integrated_gradients: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// Screen pixels between panels.
const GAP: usize = 6;

impl Heatmap<'_> {
    /// The side of one input pixel on screen: about 168 screen pixels per panel (28×28
    /// images at 6, 8×8 digits at 21), at least 1.
    pub fn cell(&self) -> usize {
        (168 / self.h.max(self.w)).max(1)
    }

    /// The three panels as RGB bytes, `(width, height, pixels)`.
    pub fn rgb(&self) -> Result<(usize, usize, Vec<u8>)> {
        let (h, w, c) = (self.h, self.w, self.c.max(1));
        let n = h * w * c;
        for (name, v) in [("image", self.image), ("saliency", self.saliency), ("integrated gradients", self.integrated_gradients)] {
            if v.len() != n {
                return Err(Error::shape("heatmap", format!("{h}×{w}×{c} = {n} {name} values"), format!("{}", v.len())));
            }
        }
        if n == 0 {
            return Err(Error::shape("heatmap", "a non-empty image", format!("{h}×{w}×{c}")));
        }
        let cell = self.cell();
        let (pw, ph) = (w * cell, h * cell);
        let width = 3 * pw + 2 * GAP;
        let mut out = vec![255u8; width * ph * 3];

        // Per-pixel values: the input's colour and grey level, and the attributions
        // summed over channels.
        let (lo, hi) = self.image.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let unit = |v: f32| if v.is_finite() { ((v - lo) / span).clamp(0.0, 1.0) } else { 0.0 };
        let colour: Vec<[f32; 3]> = self
            .image
            .chunks_exact(c)
            .map(|p| match c {
                3 => [unit(p[0]), unit(p[1]), unit(p[2])],
                _ => {
                    let g = unit(p.iter().sum::<f32>() / c as f32);
                    [g, g, g]
                }
            })
            .collect();
        let per_pixel = |v: &[f32]| -> Vec<f32> { v.chunks_exact(c).map(|p| p.iter().sum::<f32>()).map(|s| if s.is_finite() { s } else { 0.0 }).collect() };
        let (saliency, ig) = (per_pixel(self.saliency), per_pixel(self.integrated_gradients));
        let peak = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(f32::MIN_POSITIVE);
        let (s_peak, ig_peak) = (peak(&saliency), peak(&ig));

        for i in 0..h * w {
            let [r, g, b] = colour[i];
            // A light grey copy of the input under the heat: dark strokes stay visible,
            // the colour on top reads as the attribution.
            let grey = 0.3 + 0.65 * (0.299 * r + 0.587 * g + 0.114 * b);
            let under = [grey, grey, grey];
            let s = (saliency[i].abs() / s_peak).min(1.0);
            // White → yellow → red as saliency grows.
            let hot = if s < 0.5 { [1.0, 1.0, 1.0 - 2.0 * s] } else { [1.0, 2.0 - 2.0 * s, 0.0] };
            let a = ig[i] / ig_peak;
            let signed = if a >= 0.0 { [0.85, 0.1, 0.1] } else { [0.1, 0.25, 0.9] };
            let panels = [[r, g, b], blend(under, hot, s.sqrt()), blend(under, signed, a.abs().min(1.0).sqrt())];
            let (y0, x0) = ((i / w) * cell, (i % w) * cell);
            for (k, px) in panels.iter().enumerate() {
                let bytes = px.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
                for dy in 0..cell {
                    let row = (y0 + dy) * width + k * (pw + GAP) + x0;
                    for dx in 0..cell {
                        out[3 * (row + dx)..3 * (row + dx) + 3].copy_from_slice(&bytes);
                    }
                }
            }
        }
        Ok((width, ph, out))
    }

    /// The panels encoded as a PNG file's bytes.
    pub fn png(&self) -> Result<Vec<u8>> {
        let (width, height, rgb) = self.rgb()?;
        let mut bytes = Vec::new();
        let failed = |e: png::EncodingError| Error::Config(format!("encoding the heatmap as PNG: {e}"));
        {
            let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(failed)?;
            writer.write_image_data(&rgb).map_err(failed)?;
            writer.finish().map_err(failed)?;
        }
        Ok(bytes)
    }
}

/// `top` over `under` at opacity `alpha`.
fn blend(under: [f32; 3], top: [f32; 3], alpha: f32) -> [f32; 3] {
    [0, 1, 2].map(|k| under[k] * (1.0 - alpha) + top[k] * alpha)
}

/// `bytes` (a PNG file) as a `data:` URL, for an `<img>` in a self-contained page.
pub fn png_data_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn the_panels_show_the_input_and_the_sign_of_each_attribution() {
        // A 2×2 grey image: pixel 0 bright with a positive attribution, pixel 3 dark
        // with a negative one, the others without.
        let image = [1.0, 0.5, 0.5, 0.0];
        let saliency = [2.0, 0.0, 0.0, 1.0];
        let ig = [0.8, 0.0, 0.0, -0.4];
        let map = Heatmap { image: &image, saliency: &saliency, integrated_gradients: &ig, h: 2, w: 2, c: 1 };
        let (w, h, rgb) = decode(&map.png().unwrap());
        let cell = map.cell() as u32;
        assert_eq!((w, h), (3 * 2 * cell + 2 * GAP as u32, 2 * cell));
        let at = |panel: u32, px: u32, py: u32| {
            let (x, y) = (panel * (2 * cell + GAP as u32) + px * cell + cell / 2, py * cell + cell / 2);
            let o = 3 * (y * w + x) as usize;
            [rgb[o], rgb[o + 1], rgb[o + 2]]
        };
        assert_eq!(at(0, 0, 0), [255, 255, 255], "the brightest input pixel is white");
        assert_eq!(at(0, 1, 1), [0, 0, 0], "the darkest is black");
        // Saliency: the largest value fully red, none leaves the grey input.
        assert_eq!(at(1, 0, 0), [255, 0, 0]);
        let untouched = at(1, 1, 0);
        assert!(untouched[0] == untouched[1] && untouched[1] == untouched[2], "{untouched:?}");
        // Integrated gradients: red where positive, blue where negative.
        let (pos, neg) = (at(2, 0, 0), at(2, 1, 1));
        assert!(pos[0] > 200 && pos[2] < 60, "{pos:?}");
        assert!(neg[2] > neg[0] + 60, "{neg:?}");
    }

    #[test]
    fn a_mismatched_attribution_is_refused_with_the_sizes() {
        let map = Heatmap { image: &[0.0; 4], saliency: &[0.0; 3], integrated_gradients: &[0.0; 4], h: 2, w: 2, c: 1 };
        let e = map.png().unwrap_err().to_string();
        assert!(e.contains("2×2×1 = 4 saliency values") && e.contains('3'), "{e}");
    }

    #[test]
    fn a_data_url_carries_the_bytes_in_base64() {
        assert_eq!(png_data_url(b"\x89PNG"), "data:image/png;base64,iVBORw==");
    }
}
