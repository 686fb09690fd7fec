use super::*;

fn w(start_ms: i64, end_ms: i64) -> Window {
    Window { start_ms, end_ms }
}

#[test]
fn tumbling_windows_hold_each_event_once_aligned_to_the_epoch() {
    let minute = WindowKind::Tumbling { size_ms: 60_000 };
    assert_eq!(minute.windows_of(0), vec![w(0, 60_000)]);
    assert_eq!(minute.windows_of(59_999), vec![w(0, 60_000)]);
    assert_eq!(minute.windows_of(60_000), vec![w(60_000, 120_000)]);
    // Before the epoch too: floor, not truncation toward zero.
    assert_eq!(minute.windows_of(-1), vec![w(-60_000, 0)]);
}

#[test]
fn hopping_windows_hold_each_event_size_over_advance_times() {
    let hop = WindowKind::Hopping {
        size_ms: 10,
        advance_ms: 5,
    };
    assert_eq!(hop.windows_of(0), vec![w(-5, 5), w(0, 10)]);
    assert_eq!(hop.windows_of(7), vec![w(0, 10), w(5, 15)]);
    assert_eq!(hop.windows_of(10), vec![w(5, 15), w(10, 20)]);
    let thirds = WindowKind::Hopping {
        size_ms: 9,
        advance_ms: 3,
    };
    for t in -20..20 {
        let windows = thirds.windows_of(t);
        assert_eq!(windows.len(), 3, "t={t}: {windows:?}");
        assert!(windows.iter().all(|x| x.start_ms <= t && t < x.end_ms));
    }
    // advance == size is tumbling.
    let same = WindowKind::Hopping {
        size_ms: 10,
        advance_ms: 10,
    };
    assert_eq!(same.windows_of(13), vec![w(10, 20)]);
}

#[test]
fn a_window_closes_once_the_watermark_passes_its_end_and_the_lateness() {
    let mut mark = Watermark::new(1_000);
    let window = w(0, 60_000);
    assert!(!mark.closes(window), "nothing seen yet");
    mark.observe(60_999);
    assert!(!mark.closes(window));
    mark.observe(10); // Out of order: the watermark does not go back.
    assert_eq!(mark.max_ms, Some(60_999));
    mark.observe(61_000);
    assert!(mark.closes(window));
    // An event of the closed window is late; one of the next window is not.
    let minute = WindowKind::Tumbling { size_ms: 60_000 };
    assert!(mark.still_open(&minute.windows_of(59_000)).is_empty());
    assert_eq!(
        mark.still_open(&minute.windows_of(60_500)),
        vec![w(60_000, 120_000)]
    );
}

#[test]
fn a_hopping_event_counts_in_its_windows_still_open_and_is_late_only_when_none_is() {
    let hop = WindowKind::Hopping {
        size_ms: 10,
        advance_ms: 5,
    };
    let mut mark = Watermark::new(0);
    mark.observe(10);
    // [0, 10) closed, [5, 15) open: the event at 7 counts in the open one.
    assert_eq!(mark.still_open(&hop.windows_of(7)), vec![w(5, 15)]);
    mark.observe(15);
    assert!(mark.still_open(&hop.windows_of(7)).is_empty());
}

#[test]
fn times_at_the_ends_of_the_range_do_not_overflow() {
    let tumbling = WindowKind::Tumbling { size_ms: 3 };
    let first = tumbling.windows_of(i64::MIN + 1);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].start_ms, i64::MIN);
    let last = tumbling.windows_of(i64::MAX);
    assert_eq!(last[0].end_ms, i64::MAX);
    let hop = WindowKind::Hopping {
        size_ms: 10,
        advance_ms: 5,
    };
    assert_eq!(hop.windows_of(i64::MAX).len(), 2);
    assert_eq!(hop.windows_of(i64::MIN).len(), 2);
    let session = WindowKind::Session { gap_ms: 10 };
    assert_eq!(session.windows_of(i64::MAX)[0].end_ms, i64::MAX);
}

#[test]
fn open_windows_close_in_end_order_exactly_once() {
    let mut open = OpenWindows::new();
    open.open("b", w(0, 20));
    open.open("a", w(0, 10));
    open.open("a", w(0, 10)); // again: still one
    open.open("a", w(10, 20));
    assert_eq!(open.len(), 3);
    let mut mark = Watermark::new(0);
    mark.observe(9);
    assert!(open.close(&mark).is_empty());
    mark.observe(15);
    assert_eq!(open.close(&mark), vec![("a", w(0, 10))]);
    assert!(open.close(&mark).is_empty(), "closed once");
    mark.observe(20);
    // Same end: the earlier start first.
    assert_eq!(open.close(&mark), vec![("b", w(0, 20)), ("a", w(10, 20))]);
    assert!(open.is_empty());
}

#[test]
fn a_rollback_puts_back_what_changed_since_the_mark() {
    let mut open = OpenWindows::new();
    open.open("a", w(0, 10));
    open.open("b", w(0, 20));
    open.mark();
    open.open("a", w(10, 20));
    open.forget(&"b", w(0, 20));
    let mut mark = Watermark::new(0);
    mark.observe(10);
    assert_eq!(open.close(&mark), vec![("a", w(0, 10))]);
    assert_eq!(open.of_key(&"a"), vec![w(10, 20)]);
    open.rollback();
    assert_eq!(open.len(), 2);
    assert_eq!(open.of_key(&"a"), vec![w(0, 10)]);
    assert_eq!(open.of_key(&"b"), vec![w(0, 20)]);
}

#[test]
fn sessions_merge_events_closer_than_the_gap() {
    let sessions = Sessions { gap_ms: 10 };
    let first = sessions.add(0, &[]);
    assert_eq!(first.into, w(0, 10));
    assert!(first.absorbed.is_empty());
    // 12 is more than the gap after 0: a session of its own.
    let apart = sessions.add(12, &[w(0, 10)]);
    assert_eq!(apart.into, w(12, 22));
    assert!(apart.absorbed.is_empty());
    // 9 is within the gap of both: it bridges them into one.
    let bridge = sessions.add(9, &[w(0, 10), w(12, 22)]);
    assert_eq!(bridge.into, w(0, 22));
    assert_eq!(bridge.absorbed, vec![w(0, 10), w(12, 22)]);
    // An event inside a session leaves it as it is.
    let inside = sessions.add(3, &[w(0, 22)]);
    assert_eq!(inside.into, w(0, 22));
}

#[test]
fn merged_sessions_are_forgotten_and_the_merge_closes_once() {
    let sessions = Sessions { gap_ms: 10 };
    let mut open = OpenWindows::new();
    open.open(7u32, w(0, 10));
    open.open(7u32, w(12, 22));
    let merge = sessions.add(9, &[w(0, 10), w(12, 22)]);
    for absorbed in &merge.absorbed {
        open.forget(&7, *absorbed);
    }
    open.open(7, merge.into);
    let mut mark = Watermark::new(0);
    mark.observe(30);
    assert_eq!(open.close(&mark), vec![(7, w(0, 22))]);
}
