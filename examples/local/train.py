"""A tiny training job: fit y = 3x + 2 by gradient descent, printing the loss as it goes,
and save the model to the job's MODEL output directory. Standard library only."""

import json
import os
import random
import time

random.seed(int(os.environ.get("AZ_BATCHAI_TASK_INDEX", "0")))
points = [(x / 10, 3 * x / 10 + 2 + random.gauss(0, 0.1)) for x in range(50)]
weight, bias, rate = 0.0, 0.0, 0.05
for epoch in range(1, 201):
    grad_w = sum(2 * (weight * x + bias - y) * x for x, y in points) / len(points)
    grad_b = sum(2 * (weight * x + bias - y) for x, y in points) / len(points)
    weight, bias = weight - rate * grad_w, bias - rate * grad_b
    if epoch % 20 == 0:
        loss = sum((weight * x + bias - y) ** 2 for x, y in points) / len(points)
        print(f"epoch {epoch:3d}  loss {loss:.5f}  weight {weight:.3f}  bias {bias:.3f}", flush=True)
        time.sleep(0.1)

model_dir = os.environ["AZ_BATCHAI_OUTPUT_MODEL"]
with open(os.path.join(model_dir, "model.json"), "w") as handle:
    json.dump({"weight": round(weight, 4), "bias": round(bias, 4)}, handle)
print(f"saved {model_dir}/model.json")
