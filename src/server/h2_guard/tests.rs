use super::*;

fn header(kind: u8, flags: u8, stream: u32, len: usize) -> Vec<u8> {
    let mut h = u32::try_from(len).unwrap().to_be_bytes()[1..].to_vec();
    h.extend([kind, flags]);
    h.extend(stream.to_be_bytes());
    h
}

#[test]
fn frames_are_followed_across_any_split() {
    let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    stream.extend(header(SETTINGS, 0, 0, 6));
    stream.extend([0, 4, 0, 0, 0, 1]);
    stream.extend(header(HEADERS, 5, 3, 2));
    stream.extend([0x82, 0x84]);
    stream.extend(header(PING, 0, 0, 8));
    stream.extend([7; 8]);
    for split in 1..stream.len() {
        let mut frames = Frames {
            skip: PREFACE_LEN,
            ..Frames::default()
        };
        let mut seen = Vec::new();
        for chunk in stream.chunks(split) {
            frames.feed(chunk, |h| {
                seen.push((h[3], h[8]));
                true
            });
        }
        assert_eq!(
            seen,
            [(SETTINGS, 0), (HEADERS, 3), (PING, 0)],
            "split {split}"
        );
        assert_eq!(frames.to_boundary(), 0);
    }
}

#[test]
fn a_stop_gives_the_offset_of_the_header() {
    let mut frames = Frames::default();
    let mut bytes = header(PING, 0, 0, 8);
    bytes.extend([0; 8]);
    bytes.extend(header(GOAWAY, 0, 0, 8));
    assert_eq!(frames.feed(&bytes, |h| h[3] != GOAWAY), Some(17));
    // A header that began in an earlier call is cut at 0.
    let mut frames = Frames::default();
    frames.feed(&bytes[..20], |_| true);
    assert_eq!(frames.feed(&bytes[20..], |h| h[3] != GOAWAY), Some(0));
}

#[test]
fn control_frames_past_the_limit_call_for_goaway() {
    let mut guard = H2Guard::new(());
    assert!(guard.inspect(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]));
    for _ in 1..CONTROL_FRAMES_PER_WINDOW {
        assert!(guard.inspect(&[0, 0, 8, PING, 0, 0, 0, 0, 0]));
    }
    // ACKs are answers, not demands.
    assert!(guard.inspect(&[0, 0, 8, PING, ACK, 0, 0, 0, 0]));
    assert!(guard.inspect(&[0, 0, 0, HEADERS, 4, 0, 0, 0, 7]));
    assert!(!guard.inspect(&[0, 0, 8, PING, 0, 0, 0, 0, 0]));
    let GoAway::Pending(frame, 0) = &guard.goaway else {
        panic!("no GOAWAY")
    };
    assert_eq!(&frame[3..13], &[GOAWAY, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    assert_eq!(&frame[13..17], &ENHANCE_YOUR_CALM.to_be_bytes());
}

#[test]
fn priority_frames_past_a_hundred_per_stream_call_for_goaway() {
    let mut guard = H2Guard::new(());
    assert!(guard.inspect(&[0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]));
    assert!(guard.inspect(&[0, 0, 0, HEADERS, 5, 0, 0, 0, 1]));
    // One stream opened: 100 for it and 100 for the connection.
    for _ in 0..200 {
        assert!(guard.inspect(&[0, 0, 5, PRIORITY, 0, 0, 0, 0, 3]));
    }
    assert!(!guard.inspect(&[0, 0, 5, PRIORITY, 0, 0, 0, 0, 3]));
}

#[test]
fn a_first_frame_other_than_settings_calls_for_goaway() {
    let mut guard = H2Guard::new(());
    assert!(!guard.inspect(&[0, 0, 8, PING, 0, 0, 0, 0, 0]));
    let GoAway::Pending(frame, _) = &guard.goaway else {
        panic!("no GOAWAY")
    };
    assert_eq!(&frame[13..17], &PROTOCOL_ERROR.to_be_bytes());
}
