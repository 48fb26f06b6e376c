//! RFC 9113 §10.5: control frames that each demand an answer, and PRIORITY frames, flooded.

use super::*;

// ---------------------------------------------------------------------------------------------
// §10.5 Denial-of-service: control frames that each demand an answer
// ---------------------------------------------------------------------------------------------

/// `count` copies of `frame` in one write: GOAWAY ENHANCE_YOUR_CALM, then close.
async fn control_flood_is_cut_off(frame: Vec<u8>, count: usize) {
    let rig = Rig::start().await;
    let client = rig.connect().await;
    let (mut reader, flood) = client.flood_in_background(frame.repeat(count), 1);
    let goaway = reader.expect_goaway(soon()).await;
    assert_eq!(goaway.code, code::ENHANCE_YOUR_CALM, "{goaway:?}");
    assert!(reader.closed_within(soon()).await);
    flood.await.unwrap();
    let reply = support::client::try_get(traffic(&rig.app), "/").await;
    assert_eq!(reply.map(|r| r.status.as_u16()), Some(200), "still serves");
}

#[tokio::test]
async fn s10_5_ping_flood_gets_enhance_your_calm() {
    bounded(control_flood_is_cut_off(h2raw::ping(*b"flooding"), 5000)).await;
}

#[tokio::test]
async fn s10_5_settings_flood_gets_enhance_your_calm() {
    let settings = h2raw::settings(&[(INITIAL_WINDOW_SIZE, 65_535)]);
    bounded(control_flood_is_cut_off(settings, 5000)).await;
}

/// PRIORITY needs no answer but costs a parse (CVE-2019-9513): past 100 per stream opened,
/// as Envoy allows, the connection is cut off.
#[tokio::test]
async fn s10_5_priority_flood_gets_enhance_your_calm() {
    bounded(control_flood_is_cut_off(h2raw::priority(3, 0, 16), 5000)).await;
}

/// A client that sends a few PRIORITY frames per stream, as browsers did, is served.
#[tokio::test]
async fn s10_5_priority_frames_at_an_ordinary_rate_are_accepted() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        for stream in [1u32, 3, 5] {
            let priorities: Vec<u8> = (0..5)
                .flat_map(|i| h2raw::priority(stream + 100 + 2 * i, 0, 16))
                .collect();
            client.send(&priorities).await.unwrap();
            assert_eq!(status(&mut client, stream, &get("/")).await, Some(200));
        }
    })
    .await;
}

#[tokio::test]
async fn s10_5_pings_at_an_ordinary_rate_are_answered() {
    bounded(async {
        let rig = Rig::start().await;
        let mut client = rig.connect().await;
        // A burst of 50 (a keep-alive client sends one every few seconds).
        client
            .send(&h2raw::ping(*b"burst!!!").repeat(50))
            .await
            .unwrap();
        for _ in 0..50 {
            let pong = client
                .reader
                .find(soon(), |f| f.kind == kind::PING || f.kind == kind::GOAWAY)
                .await;
            assert_eq!(pong.kind, kind::PING);
        }
        assert_eq!(status(&mut client, 1, &get("/")).await, Some(200));
    })
    .await;
}
