#!/usr/bin/env python3
"""The layering check (scripts/check_layering.py) accepts the real tree and refuses wrong edges.

Run by ctest as layering_test with the table the build generated:
  python3 tests/layering/test_check_layering.py --table build/layering.txt --src src
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "check_layering.py")
ARGS = None


def run(table, src):
    p = subprocess.run([sys.executable, SCRIPT, "--table", table, "--src", src],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr


class CheckLayering(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="layering_")
        self.src = os.path.join(self.tmp, "src")
        shutil.copytree(ARGS.src, self.src, ignore=shutil.ignore_patterns("CMakeLists.txt"))

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def add(self, rel, text):
        path = os.path.join(self.src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def test_real_tree_is_clean(self):
        rc, err = run(ARGS.table, ARGS.src)
        self.assertEqual(rc, 0, err)

    def test_header_only_wrong_edge_fails(self):
        # common/ may use nothing of ours; a header including http/ is caught without any linking.
        self.add("common/bad.h", '#pragma once\n#include "http/http_client.h"\n')
        rc, err = run(ARGS.table, self.src)
        self.assertEqual(rc, 1)
        self.assertIn('src/common/bad.h:2: common may not include "http/http_client.h" (http)', err)

    def test_upward_edge_from_a_lower_layer_fails(self):
        # The cycle this table removed: http/ reaching into ingest/.
        self.add("http/back_edge.cc", '#include "ingest/udp_receiver.h"\n')
        rc, err = run(ARGS.table, self.src)
        self.assertEqual(rc, 1)
        self.assertIn("http may not include", err)

    def test_buffer_may_use_metrics_but_not_the_rest_of_telemetry(self):
        self.add("buffer/ok.cc", '#include "telemetry/metrics.h"\n')
        self.assertEqual(run(ARGS.table, self.src)[0], 0)
        self.add("buffer/bad.cc", '#include "telemetry/telemetry_reporter.h"\n')
        rc, err = run(ARGS.table, self.src)
        self.assertEqual(rc, 1)
        self.assertIn('(telemetry)', err)

    def test_production_code_may_not_include_test_support(self):
        self.add("aws/uses_fake.cc", '#include "tests/support/fake_aws.h"\n')
        rc, err = run(ARGS.table, self.src)
        self.assertEqual(rc, 1)
        self.assertIn("includes test support", err)
        os.remove(os.path.join(self.src, "aws/uses_fake.cc"))
        self.add("aws/uses_fake_test.cc", '#include "tests/support/fake_aws.h"\n')
        self.assertEqual(run(ARGS.table, self.src)[0], 0)

    def test_undeclared_folder_fails(self):
        self.add("newfolder/thing.cc", "int x;\n")
        rc, err = run(ARGS.table, self.src)
        self.assertEqual(rc, 1)
        self.assertIn("src/newfolder/thing.cc: no library declares this folder", err)

    def test_cycle_in_table_fails(self):
        table = os.path.join(self.tmp, "table.txt")
        with open(ARGS.table) as f:
            rows = f.read().rstrip("\n").split("\n")
        rows = [r + ",aws" if r.startswith("common\t") else r for r in rows]
        with open(table, "w") as f:
            f.write("\n".join(rows) + "\n")
        rc, err = run(table, self.src)
        self.assertEqual(rc, 1)
        self.assertIn("layering table has a cycle: ", err)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--table", required=True)
    ap.add_argument("--src", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)
