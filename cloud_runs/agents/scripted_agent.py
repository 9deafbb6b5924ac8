"""A deterministic coding agent: follows a JSON recipe of steps in the current directory.

Shipped into the sandbox as a file and run with ``python3`` (standard library
only, Python 3.8+), so it needs nothing installed. Used by the demo and the tests
in place of a model-driven agent.

Usage:
    python3 scripted_agent.py RECIPE.json [--prompt-file FILE]

The recipe is ``{"steps": [...]}``; each step has an ``action``:

=========  ==================================================================
write      ``path``, ``content`` (text), ``executable`` (bool): create/overwrite
edit       ``path``, ``old``, ``new``: replace every ``old`` (fails if absent)
delete     ``path``: remove a file or directory
rename     ``path``, ``to``: move a file or directory
chmod      ``path``, ``executable`` (bool): set or clear the execute bits
run        ``argv`` (list), ``allow_failure`` (bool): run a command (no shell)
commit     ``message``, ``allow_empty``: ``git add -A`` and commit (author from
           ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``, else a scripted-agent identity)
fail       ``exit_code``, ``message``: stop with that status
hang       ``seconds``: sleep (to exercise timeouts)
say        ``text``: a message; the last one is the run's summary
=========  ==================================================================

Changes not followed by a ``commit`` step stay uncommitted in the working tree.
Paths are relative to the repository and may not leave it or touch ``.git``.

Every step prints JSON lines on stdout (``start``, ``step``, ``message``,
``command``, ``commit``, ``result``, ``error``); commands' own output goes to stderr.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import time

DEFAULT_NAME = "Cloud Runs Scripted Agent"
DEFAULT_EMAIL = "scripted-agent@cloud-runs.invalid"


class StepError(Exception):
    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


def emit(event):
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def safe_path(root, path):
    """The absolute path of ``path`` inside ``root``; refuses escapes and ``.git``."""
    if not isinstance(path, str) or not path or os.path.isabs(path):
        raise StepError("path %r must be a non-empty relative path" % (path,))
    full = os.path.normpath(os.path.join(root, path))
    relative = os.path.relpath(full, root)
    if relative == "." or relative.startswith(".."):
        raise StepError("path %r leaves the repository" % (path,))
    if relative.split(os.sep)[0] == ".git":
        raise StepError("path %r is inside .git" % (path,))
    return full


def set_executable(path, executable):
    mode = os.stat(path).st_mode
    if executable:
        # Execute wherever read is allowed, as chmod +x does under a usual umask.
        mode |= (mode & 0o444) >> 2
    else:
        mode &= ~0o111
    os.chmod(path, stat.S_IMODE(mode))


def git(root, *args, check=True):
    env = dict(os.environ)
    for role in ("AUTHOR", "COMMITTER"):
        env.setdefault("GIT_%s_NAME" % role, env.get("GIT_AUTHOR_NAME", DEFAULT_NAME))
        env.setdefault("GIT_%s_EMAIL" % role, env.get("GIT_AUTHOR_EMAIL", DEFAULT_EMAIL))
    done = subprocess.run(["git", *args], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    if check and done.returncode != 0:
        raise StepError("git %s failed: %s" % (args[0], (done.stderr or done.stdout).strip()))
    return done


def run_step(root, index, step, state):
    action = step.get("action")
    emit({"type": "step", "index": index, "action": action, "path": step.get("path"), "pid": os.getpid()})
    if action == "write":
        path = safe_path(root, step["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(step.get("content", ""))
        if step.get("executable"):
            set_executable(path, True)
    elif action == "edit":
        path = safe_path(root, step["path"])
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
        if step["old"] not in text:
            raise StepError("edit of %s: the text to replace was not found" % step["path"])
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text.replace(step["old"], step.get("new", "")))
    elif action == "delete":
        path = safe_path(root, step["path"])
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            raise StepError("delete of %s: no such file" % step["path"])
    elif action == "rename":
        source, target = safe_path(root, step["path"]), safe_path(root, step["to"])
        if not os.path.lexists(source):
            raise StepError("rename of %s: no such file" % step["path"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(source, target)
    elif action == "chmod":
        set_executable(safe_path(root, step["path"]), step.get("executable", True))
    elif action == "run":
        argv = step["argv"]
        done = subprocess.run(argv, cwd=root, stdout=sys.stderr, stderr=sys.stderr)
        emit({"type": "command", "argv": argv, "exit_code": done.returncode})
        if done.returncode != 0 and not step.get("allow_failure"):
            raise StepError("command %s exited with status %d" % (argv[0], done.returncode))
    elif action == "commit":
        git(root, "add", "-A")
        args = ["commit", "-q", "-m", step["message"]]
        if step.get("allow_empty"):
            args.append("--allow-empty")
        elif not git(root, "status", "--porcelain").stdout.strip():
            raise StepError("commit: there is nothing to commit")
        git(root, *args)
        sha = git(root, "rev-parse", "HEAD").stdout.strip()
        emit({"type": "commit", "sha": sha, "message": step["message"]})
    elif action == "fail":
        raise StepError(step.get("message") or "the recipe says to fail", int(step.get("exit_code", 1)))
    elif action == "hang":
        time.sleep(float(step.get("seconds", 3600)))
    elif action == "say":
        state["summary"] = step["text"]
        emit({"type": "message", "text": step["text"]})
    else:
        raise StepError("unknown action %r in step %d" % (action, index), 2)


def main(argv):
    if not argv or argv[0].startswith("-"):
        sys.stderr.write("usage: scripted_agent.py RECIPE.json [--prompt-file FILE]\n")
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        recipe = json.load(handle)
    steps = recipe.get("steps", [])
    root = os.getcwd()
    prompt_chars = None
    if "--prompt-file" in argv[1:]:
        with open(argv[argv.index("--prompt-file") + 1], encoding="utf-8") as handle:
            prompt_chars = len(handle.read())
    emit({"type": "start", "steps": len(steps), "cwd": root, "prompt_chars": prompt_chars})
    state = {"summary": ""}
    for index, step in enumerate(steps):
        try:
            run_step(root, index, step, state)
        except StepError as error:
            emit({"type": "error", "index": index, "message": str(error)})
            sys.stderr.write("scripted agent: %s\n" % error)
            return error.exit_code
        except (OSError, KeyError, ValueError, subprocess.SubprocessError) as error:
            message = "step %d (%s) failed: %s: %s" % (index, step.get("action"), type(error).__name__, error)
            emit({"type": "error", "index": index, "message": message})
            sys.stderr.write("scripted agent: %s\n" % message)
            return 1
    emit({"type": "result", "summary": state["summary"], "steps": len(steps)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
