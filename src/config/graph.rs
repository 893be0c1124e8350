//! Dependency-graph checks that config validation needs before a plan
//! exists: nodes are process indexes, `deps[i]` lists what `i` depends on.

/// A dependency cycle as a path that returns to its start (`a → b → a`),
/// or `None` when the graph is acyclic.
pub fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; deps.len()];
    for start in 0..deps.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative DFS: (node, next edge index) with the current path.
        let mut stack = vec![(start, 0usize)];
        marks[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&next) = deps[node].get(*edge) {
                *edge += 1;
                match marks.get(next).copied() {
                    Some(Mark::New) => {
                        marks[next] = Mark::OnPath;
                        stack.push((next, 0));
                    }
                    Some(Mark::OnPath) => {
                        let from = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// Start rank of each node in an acyclic graph: 0 without dependencies,
/// else one more than the highest rank it depends on. Nodes of one rank can
/// start together.
pub fn ranks(deps: &[Vec<usize>]) -> Vec<usize> {
    fn rank(node: usize, deps: &[Vec<usize>], memo: &mut [Option<usize>], depth: usize) -> usize {
        if let Some(r) = memo[node] {
            return r;
        }
        // Depth guards against a cycle, which validation rejects earlier.
        let r = if depth > deps.len() {
            0
        } else {
            deps[node]
                .iter()
                .filter(|d| **d < deps.len())
                .map(|d| rank(*d, deps, memo, depth + 1) + 1)
                .max()
                .unwrap_or(0)
        };
        memo[node] = Some(r);
        r
    }
    let mut memo = vec![None; deps.len()];
    (0..deps.len())
        .map(|n| rank(n, deps, &mut memo, 0))
        .collect()
}

/// Nodes grouped by rank, each group in index (declaration) order.
pub fn waves(ranks: &[usize]) -> Vec<Vec<usize>> {
    let depth = ranks.iter().max().map_or(0, |m| m + 1);
    let mut waves = vec![Vec::new(); depth];
    for (node, r) in ranks.iter().enumerate() {
        waves[*r].push(node);
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_longest_dependency_path() {
        // 0 <- 1 <- 2, and 3 depends on 0 and 2.
        let deps = vec![vec![], vec![0], vec![1], vec![0, 2]];
        assert_eq!(ranks(&deps), vec![0, 1, 2, 3]);
        assert_eq!(
            waves(&ranks(&deps)),
            vec![vec![0], vec![1], vec![2], vec![3]]
        );
        assert_eq!(
            waves(&ranks(&[vec![], vec![], vec![0]])),
            vec![vec![0, 1], vec![2]]
        );
    }

    #[test]
    fn acyclic_graphs_have_no_cycle() {
        assert_eq!(find_cycle(&[vec![1, 2], vec![2], vec![]]), None);
        assert_eq!(find_cycle(&[]), None);
    }

    #[test]
    fn reports_the_cycle_path() {
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![0]]),
            Some(vec![0, 1, 2, 0])
        );
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
        // The cycle is found past an acyclic prefix.
        assert_eq!(
            find_cycle(&[vec![1], vec![2], vec![1]]),
            Some(vec![1, 2, 1])
        );
    }
}
