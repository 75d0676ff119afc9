//! What a sequence header really configures: the parameter sets inside an H.264 `avcC` or an
//! HEVC `hvcC` record, without the bytes that do not change decoding (reserved bits, the copies
//! of profile and level), and the coded picture size their SPS declares.
//!
//! Two sequence headers with the same [`DecodingConfig`] decode the same way, whatever their
//! bytes, so inspection does not restart its decoder for them; and a picture size over
//! `inspect.max_pixels` is refused before FFmpeg allocates a single frame.

use bytes::Bytes;

/// The decoding-relevant content of a configuration record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodingConfig {
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: u8,
    /// Parameter set NAL units (VPS, SPS, PPS; for HEVC also SEI arrays), in record order,
    /// grouped by NAL type.
    pub parameter_sets: Vec<(u8, Bytes)>,
}

/// A coded picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureSize {
    /// Coded width in pixels (before cropping).
    pub width: u32,
    /// Coded height in pixels (before cropping).
    pub height: u32,
}

impl PictureSize {
    /// Pixels per picture.
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Parses an `AVCDecoderConfigurationRecord`. `None` when it is malformed.
pub fn avc_config(record: &[u8]) -> Option<DecodingConfig> {
    let mut r = ByteReader(record);
    let _version = r.u8()?;
    let _profile_compat_level = r.take(3)?;
    let length_size = (r.u8()? & 0x03) + 1;
    let mut parameter_sets = Vec::new();
    let sps_count = r.u8()? & 0x1F;
    for _ in 0..sps_count {
        let nal = r.sized_u16()?;
        parameter_sets.push((nal.first()? & 0x1F, Bytes::copy_from_slice(nal)));
    }
    let pps_count = r.u8()?;
    for _ in 0..pps_count {
        let nal = r.sized_u16()?;
        parameter_sets.push((nal.first()? & 0x1F, Bytes::copy_from_slice(nal)));
    }
    // High-profile extension (chroma format, bit depths, SPS extensions): chroma format and bit
    // depths repeat the SPS; SPS extensions are parameter sets of their own.
    if r.0.len() >= 4 {
        let _chroma_and_depths = r.take(3)?;
        let ext_count = r.u8()?;
        for _ in 0..ext_count {
            let nal = r.sized_u16()?;
            parameter_sets.push((nal.first()? & 0x1F, Bytes::copy_from_slice(nal)));
        }
    }
    (!parameter_sets.is_empty()).then_some(DecodingConfig {
        length_size,
        parameter_sets,
    })
}

/// Parses an `HEVCDecoderConfigurationRecord`. `None` when it is malformed.
pub fn hevc_config(record: &[u8]) -> Option<DecodingConfig> {
    let mut r = ByteReader(record);
    let general = r.take(22)?;
    let length_size = (general[21] & 0x03) + 1;
    let arrays = r.u8()?;
    let mut parameter_sets = Vec::new();
    for _ in 0..arrays {
        let nal_type = r.u8()? & 0x3F;
        let count = r.u16()?;
        for _ in 0..count {
            let nal = r.sized_u16()?;
            parameter_sets.push((nal_type, Bytes::copy_from_slice(nal)));
        }
    }
    (!parameter_sets.is_empty()).then_some(DecodingConfig {
        length_size,
        parameter_sets,
    })
}

/// The largest coded picture any SPS of an H.264 config declares.
pub fn avc_picture_size(config: &DecodingConfig) -> Option<PictureSize> {
    config
        .parameter_sets
        .iter()
        .filter(|(t, _)| *t == 7)
        .filter_map(|(_, nal)| h264_sps_size(nal))
        .max_by_key(|s| s.pixels())
}

/// The largest coded picture any SPS of an HEVC config declares.
pub fn hevc_picture_size(config: &DecodingConfig) -> Option<PictureSize> {
    config
        .parameter_sets
        .iter()
        .filter(|(t, _)| *t == 33)
        .filter_map(|(_, nal)| hevc_sps_size(nal))
        .max_by_key(|s| s.pixels())
}

/// How an H.264 slice header codes `frame_num` under an SPS: its width in bits, and whether a
/// colour plane id comes before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameNumSyntax {
    /// log2_max_frame_num.
    pub bits: u32,
    /// separate_colour_plane_flag (4:4:4 coded as three planes).
    pub colour_plane: bool,
}

/// The frame_num syntax of an H.264 config with exactly one SPS (with several, a slice's SPS
/// depends on its PPS: `None`, and no shortcut relies on it).
pub fn h264_frame_num_syntax(config: &DecodingConfig) -> Option<FrameNumSyntax> {
    let mut sps = config.parameter_sets.iter().filter(|(t, _)| *t == 7);
    let (_, nal) = sps.next()?;
    if sps.next().is_some() {
        return None;
    }
    h264_sps(nal).and_then(|(_, syntax)| syntax)
}

/// `frame_num` of the first slice of a coded frame (length-prefixed NAL units).
pub fn h264_frame_num(length_size: u8, frame: &[u8], syntax: FrameNumSyntax) -> Option<u32> {
    let size = usize::from(length_size);
    // A zero-byte length prefix would never advance (found by fuzz/ codec_config).
    if !(1..=4).contains(&size) {
        return None;
    }
    let mut rest = frame;
    while rest.len() > size {
        let len = rest[..size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let end = size.checked_add(len)?;
        let nal = rest.get(size..end)?;
        rest = &rest[end..];
        if !nal.first().is_some_and(|h| (1..=5).contains(&(h & 0x1f))) {
            continue;
        }
        let rbsp = unescape(nal.get(1..nal.len().min(17))?);
        let mut b = BitReader::new(&rbsp);
        b.ue()?; // first_mb_in_slice
        b.ue()?; // slice_type
        b.ue()?; // pic_parameter_set_id
        if syntax.colour_plane {
            b.skip(2)?;
        }
        return b.bits(syntax.bits);
    }
    None
}

/// Coded size from an H.264 SPS NAL unit (header byte included).
pub fn h264_sps_size(nal: &[u8]) -> Option<PictureSize> {
    h264_sps(nal).map(|(size, _)| size)
}

fn h264_sps(nal: &[u8]) -> Option<(PictureSize, Option<FrameNumSyntax>)> {
    let rbsp = unescape(nal.get(1..)?);
    let mut b = BitReader::new(&rbsp);
    let profile_idc = b.bits(8)?;
    b.skip(16)?; // constraint flags, level_idc
    b.ue()?; // seq_parameter_set_id
    let mut colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma_format_idc = b.ue()?;
        if chroma_format_idc == 3 {
            colour_plane = b.bit()?;
        }
        b.ue()?; // bit_depth_luma_minus8
        b.ue()?; // bit_depth_chroma_minus8
        b.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if b.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if b.bit()? {
                    skip_scaling_list(&mut b, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    // Out of range (over 16) is FFmpeg's to refuse; the size is still read.
    let log2_max_frame_num = b.ue()?.checked_add(4).filter(|&n| n <= 16);
    match b.ue()? {
        0 => {
            b.ue()?;
        }
        1 => {
            b.skip(1)?;
            b.se()?;
            b.se()?;
            let cycle = b.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                b.se()?;
            }
        }
        _ => {}
    }
    b.ue()?; // max_num_ref_frames
    b.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = b.ue()?.checked_add(1)?;
    let height_map_units = b.ue()?.checked_add(1)?;
    let frame_mbs_only = b.bit()?;
    let height_mbs = height_map_units.checked_mul(if frame_mbs_only { 1 } else { 2 })?;
    Some((
        PictureSize {
            width: width_mbs.checked_mul(16)?,
            height: height_mbs.checked_mul(16)?,
        },
        log2_max_frame_num.map(|bits| FrameNumSyntax { bits, colour_plane }),
    ))
}

fn skip_scaling_list(b: &mut BitReader, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = b.se()?;
            next = (last + delta + 256).rem_euclid(256);
        }
        last = if next == 0 { last } else { next };
    }
    Some(())
}

/// Coded size from an HEVC SPS NAL unit (2-byte header included).
pub fn hevc_sps_size(nal: &[u8]) -> Option<PictureSize> {
    let rbsp = unescape(nal.get(2..)?);
    let mut b = BitReader::new(&rbsp);
    b.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = b.bits(3)? as usize;
    b.skip(1)?; // sps_temporal_id_nesting_flag
                // profile_tier_level(1, max_sub_layers_minus1)
    b.skip(96)?;
    let mut present = Vec::with_capacity(max_sub_layers_minus1);
    for _ in 0..max_sub_layers_minus1 {
        present.push((b.bit()?, b.bit()?));
    }
    if max_sub_layers_minus1 > 0 {
        b.skip(2 * (8 - max_sub_layers_minus1))?;
    }
    for (profile, level) in present {
        if profile {
            b.skip(88)?;
        }
        if level {
            b.skip(8)?;
        }
    }
    b.ue()?; // sps_seq_parameter_set_id
    if b.ue()? == 3 {
        b.skip(1)?; // separate_colour_plane_flag
    }
    let width = b.ue()?;
    let height = b.ue()?;
    (width > 0 && height > 0).then_some(PictureSize { width, height })
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

struct ByteReader<'a>(&'a [u8]);

/// What the NAL units of one coded frame (length-prefixed, as RTMP carries them) say about it,
/// as far as skipping or dropping it is concerned. Anything malformed or unusual reads as "decode
/// it": no shortcut is ever taken on a frame this parser does not fully understand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameNals {
    /// Picture slices seen.
    pub slices: usize,
    /// Every slice is a well-formed IDR slice that starts an intra picture (H.264: forbidden bit
    /// clear, nal_ref_idc set, first_mb_in_slice 0 or continuing, I/SI slice type; HEVC: layer
    /// 0, a valid temporal id, IDR_W_RADL or IDR_N_LP with first_slice_segment_in_pic_flag):
    /// nothing after it can refer to a frame before it.
    pub idr: bool,
    /// H.264 only: every slice has nal_ref_idc 0 and nothing else but SEI, access unit
    /// delimiters and filler is present, so no later frame can depend on decoding it.
    pub unreferenced: bool,
    /// H.264 only: a slice has nal_ref_idc set (a reference picture).
    pub referenced: bool,
    /// Parameter sets (H.264 SPS, PPS, SPS extension, subset SPS; HEVC VPS, SPS, PPS) ride
    /// inside the frame: it must reach the decoder even if its picture is not needed.
    pub parameter_sets: bool,
    /// The picture parameter set every IDR slice names (`None` when they differ or it does not
    /// parse). FFmpeg refuses a slice naming a PPS it has not seen, and then an "IDR" clears
    /// nothing: an IDR counts only with a PPS the configuration declares.
    pub idr_pps: Option<u32>,
}

/// Reads the NAL units of a coded frame; `None` when the framing is not clean length-prefixed
/// NAL units (a start code, a length past the end, a forbidden bit).
pub fn frame_nals(hevc: bool, length_size: u8, frame: &[u8]) -> Option<FrameNals> {
    let size = usize::from(length_size);
    if !(1..=4).contains(&size) || frame.starts_with(&[0, 0, 1]) || frame.starts_with(&[0, 0, 0, 1])
    {
        return None;
    }
    let mut nals = FrameNals {
        idr: true,
        unreferenced: !hevc,
        ..FrameNals::default()
    };
    let mut rest = frame;
    while !rest.is_empty() {
        let prefix = rest.get(..size)?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let end = size.checked_add(len)?;
        let nal = rest.get(size..end)?;
        rest = &rest[end..];
        let Some(&header) = nal.first() else {
            continue;
        };
        // A forbidden bit, or bytes a conforming NAL unit cannot contain (a start code hidden
        // inside: a decoder that splits on start codes would read other NAL units).
        if header & 0x80 != 0 || nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2) {
            return None;
        }
        if hevc {
            let kind = (header >> 1) & 0x3f;
            let layer = (u16::from(header & 1) << 5) | u16::from(nal.get(1)? >> 3);
            let temporal_plus1 = nal.get(1)? & 0x07;
            if layer != 0 || temporal_plus1 == 0 {
                return None;
            }
            // 0-31 are picture slices (22-31 reserved, counted as slices so they block a drop).
            if kind < 32 {
                nals.slices += 1;
                let first_in_picture = nal.get(2).is_some_and(|b| b & 0x80 != 0);
                nals.idr &= (kind == 19 || kind == 20) && (nals.slices > 1 || first_in_picture);
                if nals.idr {
                    let pps = hevc_slice_pps(nal.get(2..)?);
                    same_pps(&mut nals, pps);
                }
            } else if (32..=34).contains(&kind) {
                nals.parameter_sets = true;
            }
        } else {
            let (kind, ref_idc) = (header & 0x1f, header >> 5);
            match kind {
                1..=5 => {
                    nals.slices += 1;
                    nals.unreferenced &= ref_idc == 0;
                    nals.referenced |= ref_idc != 0;
                    let pps = h264_intra_slice_pps(&nal[1..], nals.slices == 1);
                    nals.idr &= kind == 5 && ref_idc != 0 && pps.is_some();
                    if nals.idr {
                        same_pps(&mut nals, pps);
                    }
                }
                6 | 9 | 12 => {}
                7 | 8 | 13 | 15 => {
                    nals.parameter_sets = true;
                    nals.unreferenced = false;
                }
                _ => nals.unreferenced = false,
            }
        }
    }
    if nals.slices == 0 {
        nals.idr = false;
        nals.unreferenced = false;
    }
    Some(nals)
}

/// The PPS id of an H.264 slice header that starts with an I or SI slice (and, for the first
/// slice of the frame, at macroblock 0); `None` for any other.
fn h264_intra_slice_pps(header: &[u8], first: bool) -> Option<u32> {
    let rbsp = unescape(header.get(..header.len().min(16))?);
    let mut bits = BitReader::new(&rbsp);
    let (first_mb, slice_type) = (bits.ue()?, bits.ue()?);
    ((!first || first_mb == 0) && matches!(slice_type % 5, 2 | 4)).then_some(())?;
    bits.ue()
}

/// The PPS id of an HEVC IDR slice segment header (after the two-byte NAL header).
fn hevc_slice_pps(header: &[u8]) -> Option<u32> {
    let rbsp = unescape(header.get(..header.len().min(16))?);
    let mut bits = BitReader::new(&rbsp);
    bits.skip(2)?; // first_slice_segment_in_pic_flag, no_output_of_prior_pics_flag (IRAP)
    bits.ue()
}

/// Every IDR slice of a frame must name the same PPS.
fn same_pps(nals: &mut FrameNals, pps: Option<u32>) {
    match (nals.slices, nals.idr_pps, pps) {
        (1, _, Some(id)) => nals.idr_pps = Some(id),
        (_, Some(a), Some(b)) if a == b => {}
        _ => {
            nals.idr = false;
            nals.idr_pps = None;
        }
    }
}

/// A frame's length-prefixed NAL units in order; `None` (then nothing more) where a length runs
/// past the frame.
fn length_prefixed_nals(size: usize, frame: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut rest = frame;
    let mut broken = !(1..=4).contains(&size);
    std::iter::from_fn(move || {
        if broken || rest.len() <= size {
            return None;
        }
        let len = rest[..size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        match size.checked_add(len).and_then(|end| rest.get(size..end)) {
            Some(nal) => {
                rest = &rest[size + len..];
                Some(Some(nal))
            }
            None => {
                broken = true;
                Some(None)
            }
        }
    })
}

/// Whether a NAL unit is a parameter set the configuration record does not declare byte for
/// byte (SPS, PPS, and H.264's subset and extension SPS; HEVC's VPS, SPS, PPS).
fn foreign_parameter_set(hevc: bool, config: &DecodingConfig, nal: &[u8]) -> bool {
    let parameter_set = match (hevc, nal.first()) {
        (true, Some(h)) => (32..=34).contains(&((h >> 1) & 0x3f)),
        (false, Some(h)) => matches!(h & 0x1f, 7 | 8 | 13 | 15),
        (_, None) => false,
    };
    parameter_set && !config.parameter_sets.iter().any(|(_, p)| p[..] == nal[..])
}

/// Whether every parameter set riding inside a frame is one the configuration record already
/// declares, byte for byte (encoders that repeat their SPS/PPS before each keyframe). One that
/// is new may change what the shortcuts read from the record (frame_num width, PPS ids).
pub fn repeats_config(hevc: bool, config: &DecodingConfig, frame: &[u8]) -> bool {
    length_prefixed_nals(usize::from(config.length_size), frame)
        .all(|nal| nal.is_some_and(|nal| !foreign_parameter_set(hevc, config, nal)))
        && (1..=4).contains(&config.length_size)
}

/// Whether a frame carries a parameter set the configuration record does not declare. Decoders
/// (FFmpeg, and the inspection built on it) apply it; nginx-rtmp's HLS drops parameter sets
/// inside frames and puts the record's before each IDR: the two read the picture apart (a crop,
/// a colour description). Malformed framing is not counted here.
pub fn carries_foreign_parameter_set(hevc: bool, config: &DecodingConfig, frame: &[u8]) -> bool {
    length_prefixed_nals(usize::from(config.length_size), frame)
        .map_while(|nal| nal)
        .any(|nal| foreign_parameter_set(hevc, config, nal))
}

/// The ids of the picture parameter sets a configuration record declares.
pub fn pps_ids(hevc: bool, config: &DecodingConfig) -> Vec<u32> {
    let (kind, header) = if hevc { (34, 2) } else { (8, 1) };
    config
        .parameter_sets
        .iter()
        .filter(|(t, _)| *t == kind)
        .filter_map(|(_, nal)| BitReader::new(&unescape(nal.get(header..)?)).ue())
        .collect()
}

/// Whether a coded frame is an IDR that nothing after it can look past (see [`FrameNals::idr`]).
pub fn is_idr(hevc: bool, length_size: u8, frame: &[u8]) -> bool {
    frame_nals(hevc, length_size, frame).is_some_and(|n| n.idr)
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn sized_u16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n).filter(|nal| !nal.is_empty())
    }
}

/// Reads bits most significant first, with Exp-Golomb codes.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = byte >> (7 - self.pos % 8) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v << 1 | u32::from(self.bit()?);
        }
        Some(v)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.data.len() * 8).then(|| self.pos = end)
    }

    /// Unsigned Exp-Golomb; `None` past 31 leading zeros (no valid field is that large).
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        ((1u64 << zeros) - 1 + u64::from(rest)).try_into().ok()
    }

    fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_zero_length_prefix_ends_every_walk() {
        // fuzz/regressions/codec_config/frame-num-zero-length-size: this looped forever.
        let syntax = super::FrameNumSyntax {
            bits: 4,
            colour_plane: false,
        };
        let frame = [0u8, 0, 0, 1, 0x65, 0x88];
        assert_eq!(super::h264_frame_num(0, &frame, syntax), None);
        assert_eq!(super::h264_frame_num(5, &frame, syntax), None);
        assert!(super::frame_nals(false, 0, &frame).is_none());
        let config = super::DecodingConfig {
            length_size: 0,
            parameter_sets: Vec::new(),
        };
        assert!(!super::repeats_config(false, &config, &frame));
    }

    use super::*;

    /// An SPS of x264 for 640x360 High profile (coded 640x368), from `ffmpeg -c:v libx264`.
    const SPS_640X360: &[u8] = &[
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
    ];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

    fn avcc(sps: &[u8], pps: &[u8], reserved: u8) -> Vec<u8> {
        let mut v = vec![1, sps[1], sps[2], sps[3], 0xFC | 3 | reserved, 0xE1];
        v.extend((sps.len() as u16).to_be_bytes());
        v.extend(sps);
        v.push(1);
        v.extend((pps.len() as u16).to_be_bytes());
        v.extend(pps);
        v
    }

    #[test]
    fn reserved_bits_do_not_change_the_config() {
        let a = avc_config(&avcc(SPS_640X360, PPS, 0)).expect("parses");
        let mut flipped = avcc(SPS_640X360, PPS, 0);
        flipped[4] &= 0x03; // reserved bits cleared
        flipped[5] &= 0x1F;
        flipped[1] ^= 0xFF; // a profile byte that disagrees with the SPS
        let b = avc_config(&flipped).expect("parses");
        assert_ne!(avcc(SPS_640X360, PPS, 0), flipped);
        assert_eq!(a, b);
        assert_eq!(a.length_size, 4);
        let mut other_pps = PPS.to_vec();
        other_pps[2] ^= 1;
        assert_ne!(
            a,
            avc_config(&avcc(SPS_640X360, &other_pps, 0)).expect("parses")
        );
        assert!(avc_config(&[1, 2, 3]).is_none());
        assert!(avc_config(&[]).is_none());
    }

    #[test]
    fn h264_sps_gives_the_coded_size() {
        assert_eq!(
            h264_sps_size(SPS_640X360),
            Some(PictureSize {
                width: 640,
                height: 368
            })
        );
        let config = avc_config(&avcc(SPS_640X360, PPS, 0)).expect("parses");
        assert_eq!(
            avc_picture_size(&config).map(|s| s.pixels()),
            Some(640 * 368)
        );
        // Truncated SPS: no size rather than a wrong one.
        assert_eq!(h264_sps_size(&SPS_640X360[..8]), None);
    }

    #[test]
    fn hevc_sps_gives_the_size() {
        // x265 SPS for 1920x1080 Main profile.
        let sps: &[u8] = &[
            0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24,
            0xca, 0xf0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0f, 0x04,
        ];
        assert_eq!(
            hevc_sps_size(sps),
            Some(PictureSize {
                width: 1920,
                height: 1080
            })
        );
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> 0, 1, 2, 3, 4
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut b = BitReader::new(&data);
        assert_eq!(
            (0..5).map(|_| b.ue()).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(2), Some(3), Some(4)]
        );
        assert_eq!(unescape(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
    }

    #[test]
    fn idr_frames_are_told_from_other_keyframes() {
        let nal = |bytes: &[u8]| {
            let mut v = (bytes.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(bytes);
            v
        };
        // H.264: SEI + IDR slice; an I slice without IDR (recovery point); IDR mixed with a
        // non-IDR slice; truncated.
        let idr = [nal(&[0x06, 1, 2]), nal(&[0x65, 0x88, 0x80])].concat();
        assert!(is_idr(false, 4, &idr));
        assert!(!is_idr(false, 4, &nal(&[0x41, 0x9a])));
        assert!(!is_idr(
            false,
            4,
            &[nal(&[0x65, 0x88]), nal(&[0x41, 0x9a])].concat()
        ));
        assert!(!is_idr(false, 4, &idr[..idr.len() - 1]));
        assert!(!is_idr(false, 4, &nal(&[0x06, 1])), "no slice at all");
        assert!(!is_idr(false, 0, &idr));
        // HEVC: IDR_W_RADL (19) and IDR_N_LP (20) are; CRA (21) and TRAIL_R (1) are not.
        assert!(is_idr(true, 4, &nal(&[19 << 1, 1, 0xaf])));
        assert!(is_idr(true, 4, &nal(&[20 << 1, 1, 0xaf])));
        assert!(!is_idr(true, 4, &nal(&[21 << 1, 1, 0xaf])));
        assert!(!is_idr(true, 4, &nal(&[1 << 1, 1, 0xaf])));
        // A two-byte length prefix.
        assert!(is_idr(false, 2, &[0, 3, 0x65, 0x88, 0x80]));
        // What FFmpeg would not treat as an IDR: the forbidden bit, nal_ref_idc 0, a P slice
        // type (ue 0 = P) in an IDR NAL, a start code instead of a length, HEVC layer 1,
        // temporal id 0, a slice that does not start the picture.
        assert!(!is_idr(false, 4, &nal(&[0xe5, 0x88, 0x80])));
        assert!(!is_idr(false, 4, &nal(&[0x05, 0x88, 0x80])));
        assert!(
            !is_idr(false, 4, &nal(&[0x65, 0xc0])),
            "IDR NAL with a P slice"
        );
        assert!(!is_idr(false, 4, &[0, 0, 0, 1, 0x65, 0x88, 0x80]));
        assert!(!is_idr(true, 4, &nal(&[(19 << 1) | 1, 1, 0xaf])));
        assert!(!is_idr(true, 4, &nal(&[19 << 1, 0, 0xaf])));
        assert!(!is_idr(true, 4, &nal(&[19 << 1, 1, 0x2f])));
        // The PPS an IDR names is reported (FFmpeg refuses one it has not seen); two slices
        // naming different ones make no IDR.
        let summary = frame_nals(false, 4, &nal(&[0x65, 0x88, 0x34])).expect("well formed");
        assert!(summary.idr && summary.idr_pps == Some(5));
        assert!(!is_idr(
            false,
            4,
            &[nal(&[0x65, 0x88, 0x80]), nal(&[0x65, 0x88, 0x34])].concat()
        ));
        // A start code hidden inside a NAL unit, and a frame shaped like an avcC record.
        assert!(!is_idr(false, 4, &nal(&[0x65, 0x88, 0, 0, 1, 0x41])));
        assert!(frame_nals(false, 4, &nal(&[0x01, 0x9a, 0, 0, 1, 0x41, 0x9a])).is_none());
        assert!(frame_nals(false, 4, &[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4]).is_none());
        // A length that runs past the end, or overflows.
        assert!(!is_idr(false, 4, &[0xff, 0xff, 0xff, 0xff, 0x65, 0x88]));
    }

    #[test]
    fn parameter_sets_in_frames_are_told_new_from_repeated() {
        let nal = |bytes: &[u8]| {
            let mut v = (bytes.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(bytes);
            v
        };
        let pps = Bytes::from_static(&[0x68, 0xce, 0x38, 0x80]);
        let config = DecodingConfig {
            length_size: 4,
            parameter_sets: vec![(8, pps.clone())],
        };
        assert_eq!(pps_ids(false, &config), vec![0]);
        let slice = nal(&[0x65, 0x88, 0x80]);
        assert!(repeats_config(
            false,
            &config,
            &[nal(&pps), slice.clone()].concat()
        ));
        assert!(!repeats_config(
            false,
            &config,
            &[nal(&[0x68, 0xce, 0x3c, 0x80]), slice].concat()
        ));
    }

    #[test]
    fn unreferenced_frames_are_only_those_nothing_can_depend_on() {
        let nal = |bytes: &[u8]| {
            let mut v = (bytes.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(bytes);
            v
        };
        let b_slice = nal(&[0x01, 0x9a, 0x00]);
        let summary = |frame: &[u8]| frame_nals(false, 4, frame).expect("well formed");
        assert!(summary(&b_slice).unreferenced);
        // SEI and an access unit delimiter with it: still unreferenced.
        assert!(
            summary(&[nal(&[0x09, 0x10]), nal(&[0x06, 5, 1]), b_slice.clone()].concat())
                .unreferenced
        );
        // A reference slice, or a PPS riding along (it changes how later frames decode).
        assert!(!summary(&nal(&[0x41, 0x9a])).unreferenced);
        let with_pps = summary(&[b_slice.clone(), nal(&[0x08, 0xce, 0x38, 0x80])].concat());
        assert!(!with_pps.unreferenced && with_pps.parameter_sets);
        // No slice at all, or HEVC (its "non-reference" NAL types are not that): never.
        assert!(!summary(&nal(&[0x06, 5, 1])).unreferenced);
        assert!(
            !frame_nals(true, 4, &nal(&[0, 1, 0xaf]))
                .expect("hevc")
                .unreferenced
        );
    }
}
