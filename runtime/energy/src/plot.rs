//! `tern bench --plot FILE.png`: tokens/s and J/token against thread count.
//!
//! Two panels: left, mean tok/s per test (`pp*`, `tg*`) with ±1 sd error bars; right, gross
//! J/token (solid) and idle-subtracted J/token (dashed; a negative value is drawn at 0) where
//! energy was measured, or the words
//! "energy not measured" and the first reason when it was not. Rendering uses the built-in font
//! and PNG encoder, so it needs no system fonts or image libraries.

use std::path::Path;

use crate::font::{GLYPH_W, glyph};
use crate::png::encode_rgb;
use crate::schema::{BenchRecord, Energy};

type Rgb = [u8; 3];

const BLACK: Rgb = [20, 20, 20];
const GRID: Rgb = [225, 225, 225];
const GREY: Rgb = [110, 110, 110];
const PALETTE: [Rgb; 6] =
    [[31, 119, 180], [214, 39, 40], [44, 160, 44], [255, 127, 14], [148, 103, 189], [140, 86, 75]];

/// A simple RGB raster.
struct Canvas {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        Self { w, h, px: vec![255; (w * h * 3) as usize] } // white
    }

    fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= i64::from(self.w) || y >= i64::from(self.h) {
            return;
        }
        let i = ((y as u32 * self.w + x as u32) * 3) as usize;
        self.px[i..i + 3].copy_from_slice(&c);
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    /// A line `thick` pixels wide; `dash` > 0 draws `dash` on, `dash` off.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), thick: i64, dash: u32, c: Rgb) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as u32).max(1);
        let r = thick / 2;
        for s in 0..=steps {
            if dash > 0 && (s / dash) % 2 == 1 {
                continue;
            }
            let t = f64::from(s) / f64::from(steps);
            let x = (x0 + (x1 - x0) * t).round() as i64;
            let y = (y0 + (y1 - y0) * t).round() as i64;
            self.rect(x - r, y - r, x - r + thick - 1, y - r + thick - 1, c);
        }
    }

    fn dot(&mut self, x: f64, y: f64, radius: i64, c: Rgb) {
        let (cx, cy) = (x.round() as i64, y.round() as i64);
        for dy in -radius..=radius {
            for dx in -radius..=radius {
                if dx * dx + dy * dy <= radius * radius {
                    self.set(cx + dx, cy + dy, c);
                }
            }
        }
    }

    fn text_width(s: &str, scale: u32) -> i64 {
        i64::from((GLYPH_W + 1) * scale) * s.chars().count() as i64
    }

    fn text(&mut self, x: i64, y: i64, s: &str, scale: u32, c: Rgb) {
        let sc = i64::from(scale);
        for (k, ch) in s.chars().enumerate() {
            let gx = x + k as i64 * i64::from(GLYPH_W + 1) * sc;
            for (row, bits) in glyph(ch).iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (0x10 >> col) != 0 {
                        let px = gx + i64::from(col) * sc;
                        let py = y + row as i64 * sc;
                        self.rect(px, py, px + sc - 1, py + sc - 1, c);
                    }
                }
            }
        }
    }
}

/// A "nice" axis step (1, 2 or 5 × 10^k) giving about `n` intervals up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / n;
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let f = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    f * p
}

fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    format!("{v:.decimals$}")
}

struct Series {
    name: String,
    color: Rgb,
    dash: u32,
    /// (x index, y, optional ± error).
    points: Vec<(usize, f64, Option<f64>)>,
}

struct Panel<'a> {
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    title: &'a str,
    y_label: &'a str,
}

fn draw_panel(
    c: &mut Canvas,
    p: &Panel<'_>,
    threads: &[u32],
    series: &[Series],
    empty_msg: Option<&str>,
) {
    let (left, right, top, bottom) = (p.x + 70, p.x + p.w - 20, p.y + 50, p.y + p.h - 50);
    c.text(p.x + (p.w - Canvas::text_width(p.title, 2)) / 2, p.y + 10, p.title, 2, BLACK);
    c.text(left - 60, top - 22, p.y_label, 1, GREY);
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, y, e)| y + e.unwrap_or(0.0)))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let step = nice_step(ymax * 1.05, 5.0);
    let top_v = (ymax * 1.05 / step).ceil().max(1.0) * step;
    let ymap = |v: f64| bottom as f64 - (v / top_v) * (bottom - top) as f64;
    let n = threads.len().max(1);
    let xmap = |i: usize| left as f64 + (i as f64 + 0.5) * (right - left) as f64 / n as f64;
    // grid and y ticks
    let mut v = 0.0;
    while v <= top_v + step * 0.01 {
        let y = ymap(v).round() as i64;
        c.rect(left, y, right, y, GRID);
        let label = fmt_tick(v, step);
        c.text(left - 8 - Canvas::text_width(&label, 1), y - 3, &label, 1, BLACK);
        v += step;
    }
    // axes
    c.rect(left, top, left, bottom, BLACK);
    c.rect(left, bottom, right, bottom, BLACK);
    for (i, t) in threads.iter().enumerate() {
        let x = xmap(i).round() as i64;
        c.rect(x, bottom, x, bottom + 5, BLACK);
        let label = t.to_string();
        c.text(x - Canvas::text_width(&label, 2) / 2, bottom + 10, &label, 2, BLACK);
    }
    let xl = "THREADS";
    c.text((left + right) / 2 - Canvas::text_width(xl, 1) / 2, bottom + 32, xl, 1, GREY);
    if let Some(msg) = empty_msg {
        let (head, rest) = msg.split_once('\n').unwrap_or((msg, ""));
        let mut y = (top + bottom) / 2 - 20;
        c.text((left + right) / 2 - Canvas::text_width(head, 2) / 2, y, head, 2, [200, 30, 30]);
        y += 26;
        for line in wrap(rest, ((right - left) / 6 - 2).max(10) as usize).iter().take(6) {
            c.text((left + right) / 2 - Canvas::text_width(line, 1) / 2, y, line, 1, GREY);
            y += 12;
        }
        return;
    }
    for s in series {
        let mut prev: Option<(f64, f64)> = None;
        for &(i, yv, err) in &s.points {
            let (x, y) = (xmap(i), ymap(yv));
            if let Some(p0) = prev {
                c.line(p0, (x, y), 3, s.dash, s.color);
            }
            if let Some(e) = err.filter(|e| *e > 0.0) {
                let (y0, y1) = (ymap(yv - e), ymap(yv + e));
                c.line((x, y0), (x, y1), 1, 0, s.color);
                c.line((x - 5.0, y0), (x + 5.0, y0), 1, 0, s.color);
                c.line((x - 5.0, y1), (x + 5.0, y1), 1, 0, s.color);
            }
            c.dot(x, y, 4, s.color);
            prev = Some((x, y));
        }
    }
    // legend
    let mut ly = top + 6;
    for s in series {
        let lx = right - 12 - Canvas::text_width(&s.name, 1) - 28;
        c.line(
            (lx as f64, (ly + 3) as f64),
            ((lx + 20) as f64, (ly + 3) as f64),
            3,
            s.dash.min(4),
            s.color,
        );
        c.text(lx + 26, ly, &s.name, 1, BLACK);
        ly += 14;
    }
}

fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Renders the plot of `records` as PNG bytes (1000×440).
pub fn render_png(records: &[BenchRecord]) -> Vec<u8> {
    let (w, h) = (1000u32, 440u32);
    let mut c = Canvas::new(w, h);
    let mut threads: Vec<u32> = records.iter().map(|r| r.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut tests: Vec<&str> = records.iter().map(|r| r.test.as_str()).collect();
    tests.sort_unstable();
    tests.dedup();
    let xi = |t: u32| threads.iter().position(|&x| x == t).unwrap_or(0);
    let mut speed = Vec::new();
    let mut energy = Vec::new();
    for (k, test) in tests.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let mut rs: Vec<&BenchRecord> = records.iter().filter(|r| r.test == *test).collect();
        rs.sort_by_key(|r| r.threads);
        speed.push(Series {
            name: format!("{test} TOK/S"),
            color,
            dash: 0,
            points: rs.iter().map(|r| (xi(r.threads), r.tok_s_mean, Some(r.tok_s_sd))).collect(),
        });
        let gross: Vec<_> = rs
            .iter()
            .filter_map(|r| {
                r.energy.as_measured().and_then(|m| m.j_per_token).map(|j| (xi(r.threads), j, None))
            })
            .collect();
        let net: Vec<_> = rs
            .iter()
            .filter_map(|r| {
                r.energy
                    .as_measured()
                    .and_then(|m| m.j_per_token_idle_subtracted)
                    .map(|j| (xi(r.threads), j.max(0.0), None))
            })
            .collect();
        if !gross.is_empty() {
            energy.push(Series { name: format!("{test} J/TOK"), color, dash: 0, points: gross });
        }
        if !net.is_empty() {
            energy.push(Series {
                name: format!("{test} J/TOK - IDLE"),
                color,
                dash: 8,
                points: net,
            });
        }
    }
    let method =
        records.iter().find_map(|r| r.energy.as_measured().map(|m| m.method.to_uppercase()));
    let reason = records.iter().find_map(|r| match &r.energy {
        Energy::Unavailable(u) => Some(
            u.unavailable
                .first()
                .map_or("no source".to_string(), |x| format!("{}: {}", x.source, x.reason)),
        ),
        Energy::Measured(_) => None,
    });
    let board = records.iter().find_map(|r| r.board.clone()).unwrap_or_default();
    let header = format!("TERN BENCH  {board}");
    c.text(10, 8, &header, 1, GREY);
    let half = i64::from(w) / 2;
    draw_panel(
        &mut c,
        &Panel {
            x: 0,
            y: 10,
            w: half,
            h: i64::from(h) - 10,
            title: "TOKENS / S",
            y_label: "TOK/S",
        },
        &threads,
        &speed,
        if records.is_empty() { Some("no results") } else { None },
    );
    let etitle = match &method {
        Some(m) => format!("J / TOKEN ({m}, MEASURED)"),
        None => "J / TOKEN".to_string(),
    };
    let msg = if energy.is_empty() {
        Some(format!("energy not measured\n{}", reason.unwrap_or_default()))
    } else {
        None
    };
    draw_panel(
        &mut c,
        &Panel {
            x: half,
            y: 10,
            w: half,
            h: i64::from(h) - 10,
            title: &etitle,
            y_label: "J/TOKEN",
        },
        &threads,
        &energy,
        msg.as_deref(),
    );
    encode_rgb(w, h, &c.px)
}

/// Writes the plot to `path`.
pub fn write_png(path: &Path, records: &[BenchRecord]) -> std::io::Result<()> {
    std::fs::write(path, render_png(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.9, 5.0), 0.2);
        assert_eq!(nice_step(37.0, 5.0), 10.0);
        assert_eq!(fmt_tick(0.4, 0.2), "0.4");
        assert_eq!(fmt_tick(20.0, 10.0), "20");
    }

    #[test]
    fn wraps_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
    }
}
