//! OBS Studio as the broadcaster: Debian's `obs-studio` under Xvfb with software GL, streaming a
//! Media Source that plays the flagged sample, with x264 and automatic reconnect, through
//! hashgate into nginx-rtmp. OBS sends `onMetaData` well before its first frame (both stamped
//! 0) and its encoder releases frames in bursts; every message must still be held the full 2 s
//! delay and no frame of the clip may reach the platform. The key's block is set to lapse after
//! 1 s, so OBS's reconnect (2 s later, resuming mid-clip as its media source plays on) meets
//! probation: cut on its first match.
//!
//! OBS and Xvfb are not part of `make test` (a large install, ~40 s per run): `make interop`
//! installs them and runs this test.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::attacks::sample;
use common::crafted::{holds, TimingProxy};
use common::*;
use hashgate::matcher::list::ListSettings;
use hashgate::matcher::Matcher;

/// A throwaway OBS 29 configuration in `home`: profile and scene collection "hashgate", simple
/// output mode with x264 at 640x360 30 fps, a looping Media Source playing `media`, reconnect on.
fn write_obs_config(home: &Path, server: &str, key: &str, media: &Path) {
    let config = home.join(".config/obs-studio");
    let profile = config.join("basic/profiles/hashgate");
    let scenes = config.join("basic/scenes");
    std::fs::create_dir_all(&profile).expect("profile dir");
    std::fs::create_dir_all(&scenes).expect("scenes dir");
    std::fs::write(
        config.join("global.ini"),
        "[General]\nFirstRun=true\nLastVersion=486539264\nEnableAutoUpdates=false\n\
         ConfirmOnExit=false\n\n[Basic]\nProfile=hashgate\nProfileDir=hashgate\n\
         SceneCollection=hashgate\nSceneCollectionFile=hashgate\n\n[BasicWindow]\n\
         SysTrayEnabled=true\nWarnBeforeStartingStream=false\nWarnBeforeStoppingStream=false\n",
    )
    .expect("global.ini");
    std::fs::write(
        profile.join("basic.ini"),
        format!(
            "[General]\nName=hashgate\n\n[Output]\nMode=Simple\nReconnect=true\nRetryDelay=2\n\
             MaxRetries=25\nDelayEnable=false\n\n[SimpleOutput]\nFilePath={home}\n\
             VBitrate=800\nABitrate=128\nUseAdvanced=false\nPreset=veryfast\nStreamEncoder=x264\n\n\
             [Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\nFPSType=0\n\
             FPSCommon=30\nColorFormat=NV12\nColorSpace=709\nColorRange=Partial\n\n\
             [Audio]\nSampleRate=44100\nChannelSetup=Stereo\n",
            home = home.display()
        ),
    )
    .expect("basic.ini");
    std::fs::write(
        profile.join("service.json"),
        serde_json::json!({
            "type": "rtmp_custom",
            "settings": {"server": server, "key": key, "use_auth": false, "bwtest": false}
        })
        .to_string(),
    )
    .expect("service.json");
    let scene = serde_json::json!({
        "name": "hashgate",
        "current_scene": "Scene",
        "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}],
        "sources": [
            {
                "id": "scene", "versioned_id": "scene", "name": "Scene", "enabled": true,
                "settings": {"id_counter": 1, "custom_size": false, "items": [
                    {"name": "Media", "id": 1, "visible": true, "pos": {"x": 0.0, "y": 0.0},
                     "scale": {"x": 1.0, "y": 1.0}, "align": 5, "bounds_type": 0}
                ]}
            },
            {
                "id": "ffmpeg_source", "versioned_id": "ffmpeg_source", "name": "Media",
                "enabled": true, "mixers": 255, "volume": 1.0,
                "settings": {"is_local_file": true, "local_file": media, "looping": true,
                             "restart_on_activate": true, "close_when_inactive": false,
                             "hw_decode": false}
            }
        ],
        "groups": [],
        "transitions": [],
        "current_transition": "Cut",
        "transition_duration": 300
    });
    std::fs::write(scenes.join("hashgate.json"), scene.to_string()).expect("scene");
}

fn free_display() -> u32 {
    (90..200)
        .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
        .expect("a free X display")
}

#[test]
#[ignore = "needs OBS Studio and Xvfb: run `make interop`"]
fn obs_studio_is_held_the_full_delay_cut_and_cut_again_on_probation() {
    require("obs");
    require("Xvfb");
    let dir = temp_dir();
    let nginx = Nginx::start(dir.path());
    let after = TimingProxy::start(nginx.port);
    let log = dir.path().join("events.jsonl");
    let hashgate = Hashgate::start(
        dir.path(),
        &format!(
            "{}[[lists]]\npath = \"{}\"\n[events]\nlog = \"{}\"\n[verdict]\ncooldown = \"1s\"\n",
            upstream(&format!("rtmp://127.0.0.1:{}/live", after.port)),
            sample("flagged.pdq").display(),
            log.display()
        ),
    );
    let before = TimingProxy::start(hashgate.port);

    let display = free_display();
    let _xvfb = Process::spawn(
        "Xvfb",
        Command::new("Xvfb")
            .arg(format!(":{display}"))
            .args(["-screen", "0", "1280x720x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until("Xvfb", Duration::from_secs(10), || {
        Path::new(&format!("/tmp/.X11-unix/X{display}")).exists()
    });
    let home = dir.path().join("obs-home");
    let runtime = home.join("xdg");
    std::fs::create_dir_all(&runtime).expect("xdg dir");
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("xdg permissions");
    write_obs_config(
        &home,
        &format!("rtmp://127.0.0.1:{}/live", before.port),
        "obs",
        &sample("flagged.flv"),
    );
    let obs_log = std::fs::File::create(dir.path().join("obs.log")).expect("obs log");
    // OBS asks a web service for its service list at start: a proxy on the discard port keeps
    // that on this machine, failing at once.
    let mut obs = Process::spawn(
        "obs",
        Command::new("obs")
            .args([
                "--startstreaming",
                "--profile",
                "hashgate",
                "--collection",
                "hashgate",
            ])
            .args(["--minimize-to-tray", "--disable-missing-files-check"])
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("DISPLAY", format!(":{display}"))
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("QT_QPA_PLATFORM", "xcb")
            .env("http_proxy", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .env("ALL_PROXY", "http://127.0.0.1:9")
            .stdout(Stdio::null())
            .stderr(obs_log),
    );
    // The first stream is cut ~2.5 s into the clip; OBS reconnects 2 s later, mid-clip.
    wait_until(
        "two cuts of the OBS stream",
        Duration::from_secs(60),
        || {
            read_events(&log)
                .iter()
                .filter(|e| e["stream"] == "obs" && e["event"] == "cut")
                .count()
                >= 2
        },
    );
    obs.terminate(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));

    let events = read_events(&log);
    let cuts: Vec<_> = events
        .iter()
        .filter(|e| e["stream"] == "obs" && e["event"] == "cut")
        .collect();
    println!("cuts: {cuts:?}");
    assert_eq!(cuts[0]["probation"], false);
    assert_eq!(
        cuts[1]["probation"], true,
        "the reconnect is cut on probation"
    );
    let held = holds(&before.seen(), &after.seen());
    let (_, _, shortest) = *held.iter().min_by_key(|(_, _, d)| *d).expect("some");
    let seen = before.seen();
    let first_video = seen.iter().find(|p| p.type_id == 9).map(|p| p.first);
    let lead = first_video
        .zip(seen.first().map(|p| p.first))
        .map(|(v, d)| v.saturating_duration_since(d));
    println!(
        "{} messages reached the platform; shortest hold {shortest:?}; OBS's first frame came \
         {lead:?} after its first message",
        held.len()
    );
    assert!(
        shortest >= Duration::from_secs(2),
        "a message was held {shortest:?}, under the 2 s delay"
    );
    let matcher = Matcher::load(vec![ListSettings::for_path(sample("flagged.pdq"))]).expect("list");
    let recording = nginx.recording("obs");
    if recording.exists() {
        let (_, frames, flagged) =
            hashgate::demo::count_flagged(&recording, &matcher).expect("decode");
        println!("the platform recorded {frames} frames, {flagged} of the clip");
        assert_eq!(flagged, 0, "frames of the clip reached the platform");
    }
}
