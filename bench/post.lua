-- wrk script: POST the body file named by the BODY environment variable
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
if os.getenv("GZIP") == "1" then
   wrk.headers["Accept-Encoding"] = "gzip"
end
