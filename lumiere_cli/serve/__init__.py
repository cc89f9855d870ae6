"""A warm `lumiere`: one process that has imported torch and the model code, forking a child per command.

Most of a short command's wall time is start-up, and most of that is `import torch` (README,
Performance). `lumiere serve` pays it once; while it runs, every `lumiere` command of the same user
is handed to it by the entry point (`lumiere_cli.entry`), which imports neither torch nor typer:

    client (entry.py)                 server (server.py)                 child (fork of the server)
    1. connect; read hello  <------   hello: pid, code stamp
    2. same stamp? else run here
    3. argv, cwd, env, umask,  ---->  fork  -------------------------->  stdio = the client's fds,
       CPU affinity + fds 0, 1, 2                                        cwd, env, umask, threads;
    4. Ctrl-C, TERM, HUP  ---------------------------------------------> interrupt (exit 130)
    5. exit code  <-----------------  reap: the child's exit status

The child is the command exactly as a fresh process would run it: the same code (the stamp covers
the package's sources and the installed packages), the caller's folder, environment and terminal.
Forking is safe because the server starts no thread before it forks: torch runs there on one thread
only (no OpenMP pool), to read the default weights ahead (`weights.read_ahead`), and never on CUDA.
"""
