def main(quick: bool = False) -> int:
    raise SystemExit("replay benchmark not written yet")
