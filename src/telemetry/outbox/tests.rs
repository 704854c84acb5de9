use super::*;

fn ids(o: &Outbox) -> Vec<u64> {
    o.pending().map(|r| r.id).collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn append_ack_and_reopen_keep_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut o, rec) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert_eq!(rec.pending, 0);
    for i in 0..5 {
        o.append("events", format!("{{\"seq\":{i}}}").as_bytes())
            .unwrap();
    }
    o.ack(2).unwrap();
    o.ack(99).unwrap(); // unknown: ignored
    assert_eq!(ids(&o), [1, 3, 4, 5]);
    drop(o);
    let (mut o, rec) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert_eq!(rec.pending, 4);
    assert_eq!(ids(&o), [1, 3, 4, 5]);
    assert_eq!(o.pending().next().unwrap().payload, b"{\"seq\":0}");
    assert_eq!(o.append("netcheck", b"{}").unwrap(), 6, "ids keep growing");
    assert_eq!(
        o.pending_after(3, 2)
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [4, 5]
    );
}

#[test]
fn torn_tail_is_cut_and_appending_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    o.append("events", b"one").unwrap();
    o.append("events", b"two").unwrap();
    drop(o);
    let seg = tmp.path().join(&segment_files(tmp.path())[0]);
    let full = fs::read(&seg).unwrap();
    // A crash in the middle of the second record's write.
    fs::write(&seg, &full[..full.len() - 2]).unwrap();
    let (mut o, rec) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    let second_at = frame::decode_all(&full).frames[2].0;
    assert_eq!(rec.torn_tail_bytes, (full.len() - 2 - second_at) as u64);
    assert_eq!(ids(&o), [1]);
    o.append("events", b"three").unwrap();
    drop(o);
    let (o, rec) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert_eq!(rec.torn_tail_bytes, 0);
    let got: Vec<_> = o.pending().map(|r| r.payload.clone()).collect();
    assert_eq!(got, [b"one".to_vec(), b"three".to_vec()]);
}

#[test]
fn bound_drops_oldest_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    let payload = vec![b'x'; 1000];
    let n = 1500; // ~1.5 MB into a 1 MiB outbox
    for _ in 0..n {
        o.append("netcheck", &payload).unwrap();
        assert!(o.bytes() <= MIN_MAX_BYTES, "{}", o.bytes());
    }
    let kept = ids(&o);
    assert_eq!(o.dropped() + kept.len() as u64, n);
    assert!(o.dropped() > 0);
    // What is left is the newest, contiguous and in order.
    assert_eq!(*kept.last().unwrap(), n);
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1));
    let dropped = o.dropped();
    drop(o);
    let (o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert_eq!(o.dropped(), dropped, "the counter survives a restart");
    assert_eq!(ids(&o), kept);
}

#[test]
fn acked_segments_are_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    let payload = vec![b'y'; 2000];
    for _ in 0..500 {
        let id = o.append("netcheck", &payload).unwrap();
        o.ack(id).unwrap();
    }
    assert_eq!(o.depth(), 0);
    assert_eq!(o.dropped(), 0);
    // ~1 MB went through; what stays on disk is at most two segments.
    assert!(
        segment_files(tmp.path()).len() <= 2,
        "{:?}",
        segment_files(tmp.path())
    );
    assert!(o.bytes() <= 2 * 64 * 1024 + 4096, "{}", o.bytes());
    drop(o);
    let (mut o, rec) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert_eq!(rec.pending, 0);
    assert_eq!(o.append("events", b"z").unwrap(), 501);
}

#[test]
fn lost_acks_only_mean_resending() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    o.append("events", b"a").unwrap();
    o.append("events", b"b").unwrap();
    o.ack(1).unwrap();
    drop(o);
    let seg = tmp.path().join(&segment_files(tmp.path())[0]);
    let full = fs::read(&seg).unwrap();
    let ack_len = frame::encode(&Frame::Ack { id: 1 }).unwrap().len();
    fs::write(&seg, &full[..full.len() - ack_len]).unwrap();
    let (o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert_eq!(ids(&o), [1, 2]);
}

#[test]
fn corrupt_middle_and_foreign_files_are_survived() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    for p in [b"aaaa", b"bbbb", b"cccc"] {
        o.append("events", p).unwrap();
    }
    drop(o);
    fs::write(tmp.path().join("seg-junk.log"), b"x").unwrap();
    fs::write(tmp.path().join("notes.txt"), b"x").unwrap();
    let seg = tmp.path().join("seg-00000000000000000001.log");
    let mut bytes = fs::read(&seg).unwrap();
    let d = frame::decode_all(&bytes);
    let (second, _) = d.frames[2];
    bytes[second + frame::HEADER_LEN + 12] ^= 0x55;
    fs::write(&seg, &bytes).unwrap();
    let (o, rec) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert!(rec.corrupt_bytes > 0);
    let got: Vec<_> = o.pending().map(|r| r.payload.clone()).collect();
    assert_eq!(got, [b"aaaa".to_vec(), b"cccc".to_vec()]);
}

#[test]
fn bad_records_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut o, _) = Outbox::open(tmp.path(), MIN_MAX_BYTES).unwrap();
    assert!(o.append("Bad Topic", b"x").is_err());
    assert!(o.append("events", &vec![0; frame::MAX_BODY]).is_err());
    assert_eq!(o.depth(), 0);
    assert_eq!(o.append("events", b"ok").unwrap(), 1);
}
