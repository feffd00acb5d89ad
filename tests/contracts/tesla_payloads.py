"""Tesla fleet-telemetry payloads built with the real `tesla-protocol` bindings."""

from __future__ import annotations

from tesla_protocol.telemetry import vehicle_data_pb2

VIN = "5YJ3E1EA7KF000001"


def protobuf_payload(vin: str = VIN, seconds: int = 1_795_327_200) -> bytes:
    payload = vehicle_data_pb2.Payload(vin=vin, is_resend=False)
    payload.created_at.seconds = seconds
    payload.created_at.nanos = 123_000_000
    speed = payload.data.add(key=vehicle_data_pb2.Field.Value("VehicleSpeed"))
    speed.value.string_value = "55"
    soc = payload.data.add(key=vehicle_data_pb2.Field.Value("Soc"))
    soc.value.double_value = 80.5
    odometer = payload.data.add(key=vehicle_data_pb2.Field.Value("Odometer"))
    odometer.value.long_value = 123456
    location = payload.data.add(key=vehicle_data_pb2.Field.Value("Location"))
    location.value.location_value.latitude = 37.4
    location.value.location_value.longitude = -122.1
    gear = payload.data.add(key=vehicle_data_pb2.Field.Value("Gear"))
    gear.value.shift_state_value = vehicle_data_pb2.ShiftState.Value("ShiftStateD")
    return payload.SerializeToString()
