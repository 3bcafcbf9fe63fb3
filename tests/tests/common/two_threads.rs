/// Two OS threads, tasks split round-robin (results must not depend on this).
struct TwoThreads;
impl tern_runtime::par::Parallel for TwoThreads {
    fn threads(&self) -> usize {
        2
    }
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|s| {
            s.spawn(|| (0..n).filter(|i| i % 2 == 1).for_each(task));
            (0..n).filter(|i| i % 2 == 0).for_each(task);
        });
    }
}
