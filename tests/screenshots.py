"""The README's two pictures of `make explore`, taken in headless Chromium: `python tests/screenshots.py`.

It lives beside the browser tests because selenium is a test-only reference (never imported outside tests/).

Needs what the browser tests need (selenium from requirements-test.txt; Debian's chromium and chromium-driver),
a judge run (runs/judge/latest) and the default generator (SmolLM2, `python -m scripts.weights fetch smollm2-135m`).
Writes docs/images/explore-judge.png and docs/images/explore-generator.png; prints the page's own timings.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
PASSAGE = ("There was a table set out under a tree in front of the house, and the March Hare and the Hatter were having "
           "tea at it: a Dormouse was sitting between them, fast asleep, and the other two were using it as a cushion, "
           "resting their elbows on it, and talking over its head. \u201cVery uncomfortable for the Dormouse,\u201d "
           "thought Alice; \u201conly, as it\u2019s asleep, I suppose it doesn\u2019t mind.\u201d")


def answered(driver, button: str, where: str) -> None:
    message = driver.find_element(By.ID, f"{where}-message")
    while True:
        driver.find_element(By.ID, button).click()
        WebDriverWait(driver, 600, 0.1).until(lambda d: not d.find_element(By.ID, button).get_property("disabled")
                                              and "working" not in message.text)
        if "HTTP 429" not in message.text:  # the judge was still loading
            return


def main() -> None:
    server = subprocess.Popen([sys.executable, "-m", "scripts.explore", "--port", "0"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().split()[1]
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1150,1250"):
        options.add_argument(arg)
    options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(url)
        driver.find_element(By.ID, "text").send_keys(PASSAGE)
        answered(driver, "judge-go", "judge")
        print(driver.find_element(By.ID, "judge-legend").text)
        driver.save_screenshot(str(IMAGES / "explore-judge.png"))
        driver.find_element(By.ID, "tab-generate").click()
        driver.find_element(By.ID, "prompt").send_keys("The Queen said")
        for field, value in (("tokens", "40"), ("rows", "2")):
            box = driver.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        answered(driver, "generate-go", "generate")
        print(driver.find_element(By.CSS_SELECTOR, "#texts .legend").text)
        driver.save_screenshot(str(IMAGES / "explore-generator.png"))
    finally:
        driver.quit()
        server.terminate()


if __name__ == "__main__":
    main()
