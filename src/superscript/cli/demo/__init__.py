"""``superscript demo``: the seed's four demonstrations, told as a story against a live stack.

1. The traditional way (``naive``): a retried fee request charges twice, a re-run payment
   script collects three times.
2. The idempotent fee (``fee``): ten concurrent identical requests, one charge, one answer.
3. The single payment script (``script``): ten concurrent requests, one run, one payment.
4. The orchestrated batch (``batch``): orders paid before the batch are replayed, not paid
   again.

Every identifier carries a random suffix, so a demo run touches nothing of any other.
When nothing answers at the API address, the demo starts its own stack (``stack``:
``superscript up`` on a fresh data dir) and stops it again at the end. ``run`` finds or
starts the stack and tells the stories; ``narration`` prints them and keeps the verdicts;
``calls`` is their HTTP, ``payments`` the example script's log they count payments in.
"""

from superscript.cli.demo.run import command, demo

__all__ = ["command", "demo"]
