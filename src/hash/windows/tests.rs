use super::*;

/// A deterministic textured picture: a sum of sinusoids whose frequencies and phases come from
/// `seed`, so two seeds give unrelated pictures.
fn picture(width: usize, height: usize, seed: u64) -> LumaImage {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f32 / (1u64 << 31) as f32
    };
    let waves: Vec<(f32, f32, f32)> = (0..12)
        .map(|_| (next() * 0.12, next() * 0.12, next() * std::f32::consts::TAU))
        .collect();
    let mut pixels = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let v: f32 = waves
                .iter()
                .map(|(fx, fy, p)| (fx * x as f32 + fy * y as f32 + p).sin())
                .sum();
            pixels.push((128.0 + 30.0 * v).clamp(0.0, 255.0));
        }
    }
    LumaImage {
        width,
        height,
        pixels,
    }
}

/// `inner` scaled (nearest) into `area` of `outer`.
fn paste(outer: &mut LumaImage, inner: &LumaImage, area: ContentArea) {
    for y in 0..area.height {
        for x in 0..area.width {
            let sx = x * inner.width / area.width;
            let sy = y * inner.height / area.height;
            outer.pixels[(area.top + y) * outer.width + area.left + x] =
                inner.pixels[sy * inner.width + sx];
        }
    }
}

fn blur(image: &LumaImage, radius: usize) -> LumaImage {
    let (w, h) = (image.width, image.height);
    let mut out = image.clone();
    for y in 0..h {
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(radius), (x + radius + 1).min(w));
            let (y0, y1) = (y.saturating_sub(radius), (y + radius + 1).min(h));
            let mut sum = 0.0;
            for yy in y0..y1 {
                sum += image.pixels[yy * w + x0..yy * w + x1].iter().sum::<f32>();
            }
            out.pixels[y * w + x] = sum / ((x1 - x0) * (y1 - y0)) as f32;
        }
    }
    out
}

fn best_distance(windows: &[Window], clip: &LumaImage) -> (u32, Option<ContentArea>) {
    let target = pdq(clip).hash();
    windows
        .iter()
        .map(|w| (w.dct.hash().distance(&target), Some(w.area)))
        .min_by_key(|(d, _)| *d)
        .unwrap_or((256, None))
}

#[test]
fn a_clip_in_the_top_half_over_other_footage_is_found_in_a_half() {
    let clip = picture(640, 360, 1);
    let mut frame = picture(640, 360, 2);
    let top = ContentArea {
        left: 0,
        top: 0,
        width: 640,
        height: 180,
    };
    paste(&mut frame, &clip, top);
    let whole = pdq(&frame).hash().distance(&pdq(&clip).hash());
    let (distance, _) = best_distance(&hash_windows(&frame), &clip);
    assert!(whole > 60, "the whole frame should be far: {whole}");
    assert!(distance <= 16, "best window {distance} bits from the clip");
}

#[test]
fn a_clip_tiled_two_by_two_is_found_in_a_quadrant() {
    let clip = picture(640, 360, 3);
    let mut frame = picture(640, 360, 4);
    for (left, top) in [(0, 0), (320, 0), (0, 180), (320, 180)] {
        let area = ContentArea {
            left,
            top,
            width: 320,
            height: 180,
        };
        paste(&mut frame, &clip, area);
    }
    let (distance, _) = best_distance(&hash_windows(&frame), &clip);
    assert!(distance <= 16, "best window {distance} bits from the clip");
}

#[test]
fn a_sharp_clip_over_its_blurred_copy_is_found_between_its_seams() {
    let clip = picture(640, 360, 5);
    let mut frame = blur(&picture(640, 360, 5), 12);
    // Off every fixed window: 62 % of the width, 70 % of the height, off centre.
    let area = ContentArea {
        left: 150,
        top: 60,
        width: 400,
        height: 252,
    };
    paste(&mut frame, &clip, area);
    let windows = hash_windows(&frame);
    let (distance, found) = best_distance(&windows, &clip);
    assert!(distance <= 20, "best window {distance} bits from the clip");
    let found = found.expect("a window");
    let near = |a: usize, b: usize| a.abs_diff(b) <= 8;
    assert!(
        near(found.left, area.left)
            && near(found.top, area.top)
            && near(found.width, area.width)
            && near(found.height, area.height),
        "found {found:?}, placed {area:?}"
    );
    assert!(windows
        .iter()
        .any(|w| w.kind == WindowKind::Seams && overlap(&w.area, &area) > 0.9));
}

#[test]
fn an_ordinary_picture_has_no_seams_and_a_bounded_number_of_windows() {
    let frame = picture(1280, 720, 6);
    let windows = hash_windows(&frame);
    assert!(windows.iter().all(|w| w.kind == WindowKind::Fixed));
    assert_eq!(windows.len(), 10);
    let with_seams = {
        let mut f = blur(&frame, 10);
        let area = ContentArea {
            left: 300,
            top: 100,
            width: 700,
            height: 500,
        };
        paste(&mut f, &picture(640, 360, 7), area);
        hash_windows(&f)
    };
    assert!(with_seams.len() <= 10 + MAX_SEAM_WINDOWS);
}

#[test]
fn windows_are_reported_in_the_frames_pixels() {
    let frame = picture(1280, 720, 8);
    let windows = hash_windows(&frame);
    let right_half = windows
        .iter()
        .find(|w| w.area.left > 0 && w.area.top == 0 && w.area.height == 720)
        .expect("the right half");
    assert_eq!(right_half.area.left, 640);
    assert_eq!(right_half.area.width, 640);
    for w in &windows {
        assert!(w.area.left + w.area.width <= 1280 && w.area.top + w.area.height <= 720);
    }
}

#[test]
fn very_tall_frames_keep_their_windows() {
    let windows = hash_windows(&picture(320, 3200, 4));
    assert!(windows.len() >= 8, "{} windows", windows.len());
    for w in &windows {
        assert!(w.area.left + w.area.width <= 320 && w.area.top + w.area.height <= 3200);
    }
}

#[test]
fn a_tall_narrow_frame_is_reduced_within_the_pixel_bound() {
    // 4 million pixels 100 wide: unreduced by the height rule (100 / 64 = 1), and its windows
    // and seams would be searched at full size.
    let shared = reduced(&picture(100, 40_000, 5), 144);
    assert!(
        shared.width * shared.height <= MAX_SHARED_PIXELS,
        "{}x{}",
        shared.width,
        shared.height
    );
}

#[test]
fn tiny_frames_have_no_windows() {
    assert!(hash_windows(&picture(40, 24, 9)).is_empty());
}

#[test]
fn a_picture_at_a_quarter_of_its_contrast_keeps_its_quality_for_the_gate() {
    let mut clip = blur(&picture(640, 360, 10), 8);
    clip.pixels
        .iter_mut()
        .for_each(|v| *v = 128.0 + (*v - 128.0) * 0.3);
    let mut dull = clip.clone();
    dull.pixels
        .iter_mut()
        .for_each(|v| *v = 96.0 + (*v - 128.0) * 0.25);
    let (full, faint) = (pdq(&clip), pdq(&dull));
    assert_eq!(full.hash().distance(&faint.hash()), 0);
    assert!(full.quality >= 50, "{}", full.quality);
    assert!(faint.quality < 50, "{} vs {}", faint.quality, full.quality);
    assert!(
        faint.stretched_quality + 10 >= full.stretched_quality,
        "{} vs {}",
        faint.stretched_quality,
        full.stretched_quality
    );
    let flat = LumaImage {
        width: 640,
        height: 360,
        pixels: (0..640 * 360).map(|i| 100.0 + (i % 3) as f32).collect(),
    };
    assert!(
        pdq(&flat).stretched_quality < 50,
        "noise of a few levels stays flat"
    );
}

#[test]
fn a_negative_hashes_to_the_complement() {
    let clip = picture(640, 360, 11);
    let mut negative = clip.clone();
    negative.pixels.iter_mut().for_each(|v| *v = 255.0 - *v);
    let (a, b) = (pdq(&clip).hash(), pdq(&negative).hash());
    assert!(a.distance(&b) >= 250, "{}", a.distance(&b));
}
