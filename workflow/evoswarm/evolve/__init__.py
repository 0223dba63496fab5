"""One generation to the next: fitness and cooperation, selection, crossover, mutation, Lamarckian steps."""
