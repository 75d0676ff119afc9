//! Synthetic soundtracks for the audio tests and `bench/audio.sh`: espeak-ng speech, tones and
//! noise mixed with FFmpeg. Nothing recorded, nothing violent: the "known clip" is a machine
//! reading an ordinary announcement over a melody.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::require;

/// The announcement the known clip speaks.
pub const KNOWN_WORDS: &str = "Attention please. The convoy left the northern gate at seven. \
    Every unit should hold position until the signal. Repeat, hold position until the signal. \
    The bridge is closed, the river road is open, and the second group moves at eight. \
    Keep the radios quiet and wait for the green light on the hill.";

/// Other words, for benign speech in the same voice.
pub const OTHER_WORDS: &str = "Welcome back to the kitchen. Today we bake a simple loaf of \
    bread with flour, water, salt and a little yeast. Knead it for ten minutes, let it rest for \
    an hour, shape it gently, and bake it until the crust is golden and sounds hollow.";

/// Runs ffmpeg quietly with `args`; panics with its error output on failure.
pub fn ffmpeg(args: &[&str]) {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `words` spoken by espeak-ng in `voice` (`en`, `en-us+f3`, ...), as a WAV file.
pub fn speech(dir: &Path, name: &str, voice: &str, words: &str) -> PathBuf {
    speech_at(dir, name, voice, 150, words)
}

/// `words` spoken by espeak-ng in `voice` at `rate` words per minute, as a WAV file.
pub fn speech_at(dir: &Path, name: &str, voice: &str, rate: u32, words: &str) -> PathBuf {
    require("espeak-ng");
    let out = dir.join(format!("{name}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &rate.to_string(), "-w"])
        .arg(&out)
        .arg(words)
        .status()
        .expect("espeak-ng");
    assert!(status.success(), "espeak-ng failed");
    out
}

/// The known clip's soundtrack: the announcement over a melody, 44.1 kHz stereo WAV.
pub fn known_soundtrack(dir: &Path) -> PathBuf {
    let voice = speech(dir, "known-voice", "en", KNOWN_WORDS);
    let out = dir.join("known-soundtrack.wav");
    over_tones(&voice, (220, 330, 3), &out);
    out
}

/// `voice` over a steady tone of `tones.0` Hz and one of `tones.1` Hz beeping `tones.2` times
/// a second, as long as the voice, into `out` (44.1 kHz stereo WAV).
pub fn over_tones(voice: &Path, tones: (u32, u32, u32), out: &Path) {
    let (steady, beeping, beeps) = tones;
    ffmpeg(&[
        "-i",
        voice.to_str().expect("utf-8 path"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency={steady}:duration=60,volume=0.3"),
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency={beeping}:beep_factor={beeps}:duration=60,volume=0.2"),
        "-filter_complex",
        "[0:a]aresample=44100[s];[1:a]aresample=44100[m1];[2:a]aresample=44100[m2];\
         [s][m1][m2]amix=inputs=3:duration=first",
        "-ar",
        "44100",
        "-ac",
        "2",
        out.to_str().expect("utf-8 path"),
    ]);
}

/// A benign soundtrack of `seconds`: `kind` is `samewords` (the announcement, another voice),
/// `samevoice` (other words, the known voice), `music` (two tones and a beat) or `noise`.
pub fn benign_soundtrack(dir: &Path, kind: &str) -> PathBuf {
    let out = dir.join(format!("benign-{kind}.wav"));
    let o = out.to_str().expect("utf-8 path").to_owned();
    match kind {
        "samewords" => {
            let v = speech(dir, "benign-voice-a", "en-us+f3", KNOWN_WORDS);
            ffmpeg(&[
                "-i",
                v.to_str().expect("utf-8"),
                "-ar",
                "44100",
                "-ac",
                "2",
                &o,
            ]);
        }
        "samevoice" => {
            let v = speech(dir, "benign-voice-b", "en", OTHER_WORDS);
            ffmpeg(&[
                "-i",
                v.to_str().expect("utf-8"),
                "-ar",
                "44100",
                "-ac",
                "2",
                &o,
            ]);
        }
        "music" => ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:beep_factor=2:duration=20",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=554:duration=20",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=659:beep_factor=4:duration=20",
            "-filter_complex",
            "amix=inputs=3",
            "-ar",
            "44100",
            "-ac",
            "2",
            &o,
        ]),
        _ => ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=color=pink:duration=20:amplitude=0.3",
            "-ar",
            "44100",
            "-ac",
            "2",
            &o,
        ]),
    }
    out
}

/// A 640x360 30 fps lavfi source (`mandelbrot`, `testsrc2`, ...).
pub fn picture(source: &str) -> String {
    format!("{source}=size=640x360:rate=30")
}

/// The known clip's picture cropped 15 %, turned by 7 degrees and shrunk into one tile of a busy
/// layout (a test pattern around it): beyond every frame hash (the frame-in-frame lookup finds
/// the tile, but PDQ does not survive the turn; see the evasion table in the README).
pub fn in_layout(source: &str) -> String {
    format!(
        "testsrc2=size=640x360:rate=30[bg];{source}=size=640x360:rate=30,crop=iw*0.85:ih*0.85,\
         rotate=7*PI/180,scale=352:198[fg];[bg][fg]overlay=240:120"
    )
}

/// A 640x360 30 fps video of `seconds` from the lavfi graph `source`, with `audio` (from `audio_at`
/// seconds in) encoded as AAC at `audio_bitrate`, in an FLV file ready to publish. `video_filter`
/// (may be empty) edits the picture.
pub fn clip_with_soundtrack(
    out: &Path,
    source: &str,
    video_filter: &str,
    audio: &Path,
    audio_at: f64,
    seconds: f64,
    audio_bitrate: &str,
) {
    let vf = if video_filter.is_empty() {
        "null".to_owned()
    } else {
        video_filter.to_owned()
    };
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        source,
        "-ss",
        &format!("{audio_at}"),
        "-i",
        audio.to_str().expect("utf-8 path"),
        "-t",
        &format!("{seconds}"),
        "-vf",
        &vf,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        audio_bitrate,
        "-ac",
        "1",
        "-f",
        "flv",
        out.to_str().expect("utf-8 path"),
    ]);
}

/// `hashgate hash --audio FILE` into an audio list file.
pub fn audio_list(file: &Path, list: &Path) {
    audio_list_with(file, list, &[]);
}

/// `hashgate hash --audio` with `extra` arguments (`--speeds ...`) into an audio list file.
pub fn audio_list_with(file: &Path, list: &Path, extra: &[&str]) {
    let mut args = vec!["--audio"];
    args.extend_from_slice(extra);
    super::hash_into(&args, file, list);
}
