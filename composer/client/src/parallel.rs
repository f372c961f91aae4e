//! Network work done several requests at a time: a fixed number of scoped threads take the items
//! in order. Results come back in the items' order; after a failure no further item starts, and
//! the failure reported is the first in the items' order, so a rerun reports the same one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `f` of every item, at most `threads` at once, in the items' order.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    run(items.len(), threads, &AtomicBool::new(false), |i| {
        *results[i].lock().expect("result") = Some(f(&items[i]));
    });
    results.into_iter().map(|r| r.into_inner().expect("result").expect("every item ran")).collect()
}

/// `f` of every item, at most `threads` at once, until one fails.
pub fn try_each<T: Sync, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let failure: Mutex<Option<(usize, E)>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    run(items.len(), threads, &stop, |i| {
        if let Err(e) = f(&items[i]) {
            stop.store(true, Ordering::SeqCst);
            let mut failure = failure.lock().expect("failure");
            if failure.as_ref().is_none_or(|(at, _)| i < *at) {
                *failure = Some((i, e));
            }
        }
    });
    match failure.into_inner().expect("failure") {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

fn run(count: usize, threads: usize, stop: &AtomicBool, job: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(count) {
            scope.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        break;
                    }
                    job(i);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_and_the_first_failure_in_order_is_reported() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(map(&items, 8, |i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let failed = try_each(&items, 8, |&i| if i % 10 == 7 { Err(i) } else { Ok(()) });
        assert_eq!(failed, Err(7));
        assert_eq!(try_each(&items, 8, |_| Ok::<(), ()>(())), Ok(()));
        assert!(map(&Vec::<u32>::new(), 8, |i| *i).is_empty());
    }
}
