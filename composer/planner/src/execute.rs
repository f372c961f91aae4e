//! The one scheduler: runs the steps of a graph, each as soon as the steps it depends on are
//! done. Network steps go to one pool of download threads (they wait, so more than the cores);
//! CPU steps go to rayon's pool, no more at a time than it has threads. Of the steps ready, the
//! heaviest starts first (longest processing time first), so that the build does not end on one
//! core compressing the largest layer while the other has nothing left. Whatever order steps
//! finish in, results come back by step and the first error is the one of the lowest step index,
//! so a failing build reports the same error every time.

use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};

/// Concurrent downloads: network-bound, so more than the cores.
pub const DOWNLOAD_THREADS: usize = 8;

/// Where a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The download threads: steps that wait (on the network, or on many small writes).
    Network,
    /// rayon's pool, one thread per core: steps that compute.
    Cpu,
}

/// What the executor needs to know of a step.
pub struct Task {
    /// Indexes of the tasks that must finish first (all lower than this one's).
    pub deps: Vec<usize>,
    pub pool: Pool,
    /// How much work it is, in any unit common to the graph (bytes it reads): heavier ready
    /// tasks start first; equal ones in index order.
    pub weight: u64,
}

/// A ready task, heaviest first, then lowest index.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready(u64, std::cmp::Reverse<usize>);

impl Ready {
    fn of(tasks: &[Task], i: usize) -> Ready {
        Ready(tasks[i].weight, std::cmp::Reverse(i))
    }
}

/// A queue the download threads take work from; closed once the graph is done.
struct NetworkQueue {
    items: Mutex<(BinaryHeap<Ready>, bool)>,
    ready: Condvar,
}

impl NetworkQueue {
    fn push(&self, task: Ready) {
        self.items.lock().expect("queue").0.push(task);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.items.lock().expect("queue").1 = true;
        self.ready.notify_all();
    }

    fn pop(&self) -> Option<usize> {
        let mut items = self.items.lock().expect("queue");
        loop {
            if let Some(Ready(_, std::cmp::Reverse(task))) = items.0.pop() {
                return Some(task);
            }
            if items.1 {
                return None;
            }
            items = self.ready.wait(items).expect("queue");
        }
    }
}

/// What running a task gave: its result, or the panic it raised.
type Attempt<E> = std::thread::Result<Result<(), E>>;

/// Runs every task once its dependencies succeeded; `run(i, outputs)` sees the outputs of the
/// tasks done so far (those of its dependencies among them). After a failure no task becomes
/// ready any more; those already ready (running or queued) finish, so that which of them fail,
/// and so the error reported, does not depend on timing. Returns every output, or the error of
/// the lowest failed index.
pub fn execute<T, E, F>(tasks: &[Task], run: F) -> Result<Vec<T>, E>
where
    T: Send + Sync,
    E: Send,
    F: Fn(usize, &[OnceLock<T>]) -> Result<T, E> + Sync,
{
    execute_at_most(tasks, rayon::current_num_threads(), run)
}

/// [`execute`] with at most `threads` CPU tasks started at a time.
fn execute_at_most<T, E, F>(tasks: &[Task], threads: usize, run: F) -> Result<Vec<T>, E>
where
    T: Send + Sync,
    E: Send,
    F: Fn(usize, &[OnceLock<T>]) -> Result<T, E> + Sync,
{
    let cpu_threads = threads.max(1);
    let outputs: Vec<OnceLock<T>> = tasks.iter().map(|_| OnceLock::new()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    let mut waiting: Vec<usize> = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let mut deps = task.deps.clone();
        deps.sort_unstable();
        deps.dedup();
        for &d in &deps {
            assert!(d < i, "the graph is in dependency order: task {i} depends on {d}");
            dependents[d].push(i);
        }
        waiting.push(deps.len());
    }
    let queue = NetworkQueue { items: Mutex::new((BinaryHeap::new(), false)), ready: Condvar::new() };
    let (done_tx, done_rx) = mpsc::channel::<(usize, Attempt<E>)>();
    let mut errors: Vec<(usize, E)> = Vec::new();
    // A task that panicked reports it like a result, so that the loop below never waits for it;
    // the panic goes on once every other task is done.
    let mut panicked: Option<Box<dyn std::any::Any + Send>> = None;
    let attempt = |i: usize| -> Attempt<E> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(i, &outputs).map(|out| {
                let _ = outputs[i].set(out);
            })
        }))
    };

    std::thread::scope(|threads| {
        let (attempt, queue) = (&attempt, &queue);
        let network = tasks.iter().filter(|t| t.pool == Pool::Network).count();
        for _ in 0..DOWNLOAD_THREADS.min(network) {
            let done_tx = done_tx.clone();
            threads.spawn(move || {
                while let Some(i) = queue.pop() {
                    let _ = done_tx.send((i, attempt(i)));
                }
            });
        }
        rayon::in_place_scope(|cpu| {
            // Tasks handed out and not yet reported; CPU tasks among them.
            let mut running = 0usize;
            let mut computing = 0usize;
            let mut cpu_ready: BinaryHeap<Ready> = BinaryHeap::new();
            let ready = |i: usize, cpu_ready: &mut BinaryHeap<Ready>, running: &mut usize| match tasks[i].pool {
                Pool::Network => {
                    *running += 1;
                    queue.push(Ready::of(tasks, i));
                }
                Pool::Cpu => cpu_ready.push(Ready::of(tasks, i)),
            };
            // CPU tasks wait here, not in rayon's queue, so that the heaviest ready one is the
            // next to start whenever a thread frees up.
            let start = |cpu_ready: &mut BinaryHeap<Ready>, running: &mut usize, computing: &mut usize| {
                while *computing < cpu_threads
                    && let Some(Ready(_, std::cmp::Reverse(i))) = cpu_ready.pop()
                {
                    *running += 1;
                    *computing += 1;
                    let done_tx = done_tx.clone();
                    cpu.spawn(move |_| {
                        let _ = done_tx.send((i, attempt(i)));
                    });
                }
            };
            for (i, count) in waiting.iter().enumerate() {
                if *count == 0 {
                    ready(i, &mut cpu_ready, &mut running);
                }
            }
            start(&mut cpu_ready, &mut running, &mut computing);
            while running > 0 {
                let (i, result) = done_rx.recv().expect("a task reports before the scope ends");
                running -= 1;
                if tasks[i].pool == Pool::Cpu {
                    computing -= 1;
                }
                match result {
                    Err(payload) => {
                        panicked.get_or_insert(payload);
                    }
                    Ok(Err(e)) => errors.push((i, e)),
                    // After a failure, finish what runs and start nothing new.
                    Ok(Ok(())) if errors.is_empty() && panicked.is_none() => {
                        for &j in &dependents[i] {
                            waiting[j] -= 1;
                            if waiting[j] == 0 {
                                ready(j, &mut cpu_ready, &mut running);
                            }
                        }
                    }
                    Ok(Ok(())) => {}
                }
                // After a failure nothing new becomes ready, but what was ready still runs, as
                // it would have in rayon's queue: which steps fail must not depend on timing.
                start(&mut cpu_ready, &mut running, &mut computing);
            }
        });
        queue.close();
    });
    if let Some(payload) = panicked {
        std::panic::resume_unwind(payload);
    }
    if let Some((_, error)) = errors.into_iter().min_by_key(|(i, _)| *i) {
        return Err(error);
    }
    Ok(outputs.into_iter().map(|o| o.into_inner().expect("every task ran")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn task(deps: &[usize], pool: Pool) -> Task {
        Task { deps: deps.to_vec(), pool, weight: 0 }
    }

    #[test]
    fn each_task_sees_its_dependencies_done() {
        // 0,1 network; 2 needs both; 3 needs 2; 4 stands alone.
        let tasks = [
            task(&[], Pool::Network),
            task(&[], Pool::Network),
            task(&[0, 1], Pool::Cpu),
            task(&[2], Pool::Cpu),
            task(&[], Pool::Cpu),
        ];
        let out = execute(&tasks, |i, done: &[OnceLock<usize>]| -> Result<usize, ()> {
            Ok(match i {
                2 => done[0].get().unwrap() + done[1].get().unwrap() + 2,
                3 => done[2].get().unwrap() * 10,
                _ => i,
            })
        })
        .unwrap();
        assert_eq!(out, vec![0, 1, 3, 30, 4]);
    }

    #[test]
    fn the_lowest_failed_step_is_the_error_and_nothing_new_starts() {
        let started = AtomicUsize::new(0);
        let tasks = [task(&[], Pool::Cpu), task(&[], Pool::Network), task(&[0], Pool::Cpu), task(&[2], Pool::Cpu)];
        let result = execute(&tasks, |i, _: &[OnceLock<()>]| {
            started.fetch_add(1, Ordering::SeqCst);
            match i {
                // The later step fails first in time; the earlier one still is the error.
                1 => Err(1),
                0 => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    Err(0)
                }
                _ => Ok(()),
            }
        });
        assert_eq!(result, Err(0));
        assert_eq!(started.load(Ordering::SeqCst), 2, "steps after a failure must not start");
    }

    #[test]
    fn a_task_that_panics_ends_the_run_with_its_panic_instead_of_a_hang() {
        for pool in [Pool::Cpu, Pool::Network] {
            let tasks = [task(&[], pool), task(&[0], Pool::Cpu)];
            let run = std::panic::catch_unwind(|| {
                execute(&tasks, |i, _: &[OnceLock<()>]| -> Result<(), ()> {
                    if i == 0 {
                        panic!("a bug in a step");
                    }
                    Ok(())
                })
            });
            let payload = run.expect_err("the panic goes on");
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"a bug in a step"), "{pool:?}");
        }
    }

    #[test]
    fn the_heaviest_ready_task_starts_first() {
        let order = Mutex::new(Vec::new());
        // 0 makes 1..=4 ready at once; one runs at a time.
        let mut tasks = vec![task(&[], Pool::Cpu)];
        for weight in [1, 40, 7, 40] {
            tasks.push(Task { deps: vec![0], pool: Pool::Cpu, weight });
        }
        execute_at_most(&tasks, 1, |i, _: &[OnceLock<()>]| -> Result<(), ()> {
            order.lock().unwrap().push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(*order.lock().unwrap(), [0, 2, 4, 3, 1], "heaviest first, ties by index");
    }

    #[test]
    fn many_downloads_run_at_once() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let tasks: Vec<Task> = (0..DOWNLOAD_THREADS * 2).map(|_| task(&[], Pool::Network)).collect();
        execute(&tasks, |_, _: &[OnceLock<()>]| -> Result<(), ()> {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
        assert!(most.load(Ordering::SeqCst) > 2, "downloads overlap beyond the CPU count");
    }
}
