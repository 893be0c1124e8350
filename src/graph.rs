//! Graph algorithms over `depends_on`, shared by the config validator and
//! the supervisor: they live outside both so `config/` depends on nothing of
//! the engine.

/// A dependency cycle, as a path that returns to its start (`[a, b, c, a]`
/// for a→b→c→a, where `x→y` means x depends on y; `[a, a]` for a self
/// dependency). `deps[p]` lists what `p` depends on, so the config validator
/// can call this before a `Plan` exists. Deterministic: the cycle reachable
/// first from the lowest-numbered node, following edges in order.
pub fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let n = deps.len();
    let mut mark = vec![Mark::New; n];
    for root in 0..n {
        if mark[root] != Mark::New {
            continue;
        }
        // Iterative DFS (no recursion depth limit): the stack is the current
        // path, each entry with the index of its next edge to follow.
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::OnPath;
        while let Some(&mut (v, ref mut next)) = path.last_mut() {
            let Some(&w) = deps[v].get(*next) else {
                mark[v] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            if w >= n {
                continue;
            }
            match mark[w] {
                Mark::New => {
                    mark[w] = Mark::OnPath;
                    path.push((w, 0));
                }
                Mark::OnPath => {
                    let start = path.iter().position(|&(x, _)| x == w).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[start..].iter().map(|&(x, _)| x).collect();
                    cycle.push(w);
                    return Some(cycle);
                }
                Mark::Done => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_cycle_paths() {
        assert_eq!(find_cycle(&[]), None);
        assert_eq!(find_cycle(&[vec![], vec![0], vec![0, 1]]), None);
        // 0 -> 1 -> 2 -> 0
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![0]]),
            Some(vec![0, 1, 2, 0])
        );
        // self dependency
        assert_eq!(find_cycle(&[vec![], vec![1]]), Some(vec![1, 1]));
        // cycle not through the root: 0 -> 1 -> 2 -> 3 -> 1
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![3], vec![1]]),
            Some(vec![1, 2, 3, 1])
        );
        // diamond is not a cycle, then a cycle found later
        assert_eq!(
            find_cycle(&[vec![1, 2], vec![3], vec![3], vec![], vec![5], vec![4]]),
            Some(vec![4, 5, 4])
        );
        // out-of-range edges are ignored
        assert_eq!(find_cycle(&[vec![7]]), None);
    }

    #[test]
    fn find_cycle_deep_chain_no_stack_overflow() {
        let n = 100_000;
        let mut deps: Vec<Vec<usize>> = (0..n).map(|i| vec![i + 1]).collect();
        deps[n - 1] = vec![];
        assert_eq!(find_cycle(&deps), None);
        deps[n - 1] = vec![0];
        assert_eq!(find_cycle(&deps).map(|c| c.len()), Some(n + 1));
    }
}
