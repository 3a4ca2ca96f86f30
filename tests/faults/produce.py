"""A producer process for the flood test: THREADS threads each log N events, then it prints
what audit.log reported. Configured by the environment like any app."""

import json
import sys
import threading

from flask import Flask

from flask_audit import FlaskAudit


def main() -> None:
    threads, per_thread = int(sys.argv[1]), int(sys.argv[2])
    app = Flask("producer", instance_path=sys.argv[3])
    audit = FlaskAudit(app)
    ids: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [audit.log("flood", metadata={"n": i}) for i in range(per_thread)]
        with lock:
            ids.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
