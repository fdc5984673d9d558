// The script ProcessPoolInvoker forks for each function instance (argv[2]: its RunnerConfig).
import { runInstance } from './instance-runner.ts';

void runInstance();
